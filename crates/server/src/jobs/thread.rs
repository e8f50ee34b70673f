//! Job threads: each job runs on a thread of its own at a lower CPU
//! priority (`jobs.nice`), so that on a busy host the API's requests, on
//! the runtime's threads at normal priority, stay fast while backups run.
//! The copy workers a job starts inherit its priority (on Linux the nice
//! value is per thread and new threads take their creator's).

use std::future::Future;

/// Runs `work` on a new thread named `name` at nice value `nice` (or the
/// thread's current one when that is already lower in priority); resolves
/// to its result, or to an error when the thread could not start or panicked.
pub fn spawn_job<T: Send + 'static>(
    name: String,
    nice: i32,
    work: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = Result<T, String>> {
    let (done, result) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new().name(name).spawn(move || {
        if let Err(e) = lower_priority(nice) {
            tracing::warn!("setting the job thread's nice value to {nice}: {e}");
        }
        let _ = done.send(work());
    });
    async move {
        started.map_err(|e| format!("starting the job's thread: {e}"))?;
        result
            .await
            .map_err(|_| "the job's thread panicked".to_string())
    }
}

/// Runs `work` on a scoped thread named `name` at nice value `nice` and
/// waits for it. The service connects to Ceph this way: librados starts
/// its messenger and finisher threads from the connecting thread, and they
/// inherit its priority, so the I/O of jobs does not compete with the
/// API's threads. The name matters: an unnamed thread takes its creator's
/// (Linux copies the name with the thread), which would show a niced
/// thread as one of the runtime's, and so would any thread librados
/// starts without naming it.
pub fn run_niced<T: Send>(name: &str, nice: i32, work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let niced = || {
            if let Err(e) = lower_priority(nice) {
                tracing::warn!("setting the {name} thread's nice value to {nice}: {e}");
            }
            work()
        };
        // As `Scope::spawn`, which panics when the thread cannot start.
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn_scoped(scope, niced)
            .expect("starting a thread");
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Sets this thread's nice value to `nice` unless it is already higher
/// (raising priority back would need privileges the service lacks).
fn lower_priority(nice: i32) -> std::io::Result<()> {
    if thread_nice()? >= nice {
        return Ok(());
    }
    // SAFETY: setpriority on this thread's own id; no memory is passed.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, thread_id(), nice) };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// This thread's nice value.
fn thread_nice() -> std::io::Result<i32> {
    // getpriority may return -1 as a value: errno tells an error apart.
    // SAFETY: errno is thread-local; getpriority reads no memory of ours.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, thread_id());
        match std::io::Error::last_os_error().raw_os_error() {
            Some(0) | None => Ok(nice),
            Some(_) => Err(std::io::Error::last_os_error()),
        }
    }
}

fn thread_id() -> libc::id_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn job_priority_applies_to_the_job_thread_and_its_workers_only() {
        let caller = thread_nice().unwrap();
        let (job, worker) = spawn_job("job-test".into(), 19, || {
            let worker = std::thread::spawn(|| thread_nice().unwrap());
            (thread_nice().unwrap(), worker.join().unwrap())
        })
        .await
        .unwrap();
        assert_eq!((job, worker), (19, 19));
        assert_eq!(thread_nice().unwrap(), caller, "the caller's is unchanged");
    }

    #[tokio::test]
    async fn a_lower_value_than_the_current_one_is_left_alone() {
        let current = thread_nice().unwrap();
        let job = spawn_job("job-test".into(), current - 1, || thread_nice().unwrap());
        assert_eq!(job.await.unwrap(), current);
    }

    #[test]
    fn run_niced_runs_named_at_the_nice_value_and_threads_it_starts_inherit_it() {
        let caller = thread_nice().unwrap();
        let (own, started, name) = run_niced("niced-test", 18, || {
            let started = std::thread::spawn(|| thread_nice().unwrap());
            let name = std::thread::current().name().map(str::to_string);
            (thread_nice().unwrap(), started.join().unwrap(), name)
        });
        assert_eq!((own, started), (18, 18));
        assert_eq!(name.as_deref(), Some("niced-test"));
        assert_eq!(thread_nice().unwrap(), caller, "the caller's is unchanged");
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error() {
        let err = spawn_job("job-test".into(), 10, || -> u8 { panic!("boom") })
            .await
            .unwrap_err();
        assert!(err.contains("panicked"), "{err}");
    }
}
