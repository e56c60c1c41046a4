//! Guest-agent endpoints, with qemu-server's checks (`Agent.pm:assert_agent_available`).

use serde_json::{Value, json};

use super::{Ctx, Out, vm, vm_of};
use crate::api::reply::ApiError;
use crate::backend::{AgentCommand, AgentError};

async fn run(ctx: &Ctx<'_>, command: AgentCommand) -> Result<Value, ApiError> {
    let vmid = {
        let state = ctx.cluster.lock();
        let vm = vm_of(&state, ctx)?;
        if !vm.running {
            return Err(ApiError::fail(format!("VM {} is not running", vm.vmid)));
        }
        if !vm::agent_enabled(&vm.config) {
            return Err(ApiError::fail("No QEMU guest agent configured"));
        }
        vm.vmid
    };
    ctx.cluster
        .backend
        .agent(vmid, command)
        .await
        .map_err(|e| match e {
            AgentError::NotRunning => ApiError::fail("QEMU guest agent is not running"),
            AgentError::Failed(message) => ApiError::fail(format!("Agent error: {message}")),
        })
}

/// `POST .../agent/ping`.
pub(crate) async fn ping(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let result = run(ctx, AgentCommand::Ping).await?;
    Ok(json!({ "result": result }).into())
}

/// `GET .../agent/network-get-interfaces`.
pub(crate) async fn interfaces(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let result = run(ctx, AgentCommand::NetworkGetInterfaces).await?;
    Ok(json!({ "result": result }).into())
}

/// `GET .../agent/file-read?file=PATH`: `{content, bytes-read}` (not under `result`).
pub(crate) async fn file_read(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let file = ctx.param("file").to_string();
    Ok(run(ctx, AgentCommand::FileRead { file }).await?.into())
}
