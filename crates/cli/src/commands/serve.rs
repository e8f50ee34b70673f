//! `blockback serve`: hands over to the service crate.

use crate::args::{ServeAction, ServeArgs};
use blockback_server::auth::{new_token, Role};
use std::process::ExitCode;

pub fn run(args: &ServeArgs) -> ExitCode {
    let result = match &args.action {
        Some(ServeAction::Token { name, role }) => {
            let role = if role == "read" {
                Role::Read
            } else {
                Role::Admin
            };
            let (token, line) = new_token(name, role);
            println!("token: {token}");
            println!("tokens file line: {line}");
            Ok(())
        }
        None => blockback_server::serve(args.config.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blockback serve: error: {}", e.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}
