//! `video-status migrate`: opening a store applies its pending migrations.

use std::process::ExitCode;

use super::StoreArgs;
use crate::store::Store;

pub async fn run(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let config = args.load(None)?;
    Store::open(&config.store).await?;
    println!("store {} is at the current schema", config.store);
    Ok(ExitCode::SUCCESS)
}
