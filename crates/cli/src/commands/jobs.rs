//! `job list|show|cancel` on the local catalog (the service's jobs when
//! the CLI shares its catalog); `--server` does the same through the API.

use crate::args::JobCommand;
use crate::output::emit;
use crate::remote::{cancel_line, job_detail, jobs_table};
use crate::session::Session;
use anyhow::{Context, Result};
use blockback_core::catalog::{JobFilter, JobRecord, JobState};
use blockback_core::engine::unix_now;
use blockback_server::api::views::JobView;
use serde_json::Value;

pub fn run(session: &Session, cmd: &JobCommand) -> Result<()> {
    let json = session.config.json;
    match cmd {
        JobCommand::List { state } => {
            let state = state.as_deref().map(parse_state).transpose()?;
            let jobs = session.catalog.list_jobs(&JobFilter {
                state,
                ..Default::default()
            })?;
            let shown: Vec<Value> = jobs.into_iter().map(view).collect::<Result<_>>()?;
            emit(json, &shown, || jobs_table(&shown))
        }
        JobCommand::Show { job } => {
            let shown = view(session.catalog.job(parse_id(job)?)?)?;
            emit(json, &shown, || job_detail(&shown))
        }
        JobCommand::Cancel { job } => {
            let shown = view(session.catalog.cancel_job(parse_id(job)?, unix_now())?)?;
            emit(json, &shown, || cancel_line(&shown))
        }
    }
}

fn view(job: JobRecord) -> Result<Value> {
    Ok(serde_json::to_value(JobView::from(job))?)
}

fn parse_id(text: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(text).with_context(|| format!("job {text:?}: give the job's full id"))
}

fn parse_state(text: &str) -> Result<JobState> {
    JobState::parse(text).with_context(|| {
        format!("--state {text}: give queued, running, succeeded, failed or cancelled")
    })
}
