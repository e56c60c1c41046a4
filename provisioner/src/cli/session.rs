//! What every command that changes Proxmox does around its plan: take the
//! cluster's run lock, connect, observe, show the plan, confirm what
//! destroys, execute with progress, release the lock.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kiln::engine::{
    AgentRollout, CollectorLink, Context, EventSink, Fanout, HostAccess, RunLabel, RunOutcome,
    StorageRun, Timeouts, execute, observe, proxmox_client, storage_plan,
};
use kiln::plan::{Action, ObservedVm, Plan, PlanError, ownership_tag};
use kiln::secrets::ClusterSecrets;
use kiln_agent_deploy::AgentBundle;
use kiln_cloud_init::SshPublicKey;
use kiln_collector::{DB_FILE, TokenRegistry, collector_dir};
use kiln_inventory::Inventory;
use kiln_journal::Journal;
use kiln_proxmox::ProxmoxClient;
use kiln_secrets::generated::agent_tokens;
use kiln_secrets::{Dirs, LockError, LockRequest, RunLock, SecretStore};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;
use crate::ui::{plan_view, progress};

/// How long a run waits for locks left by an earlier, interrupted run.
const LOCK_WAIT: Duration = Duration::from_secs(120);

pub struct Session<'a> {
    global: &'a GlobalArgs,
    command: String,
    inventory: Arc<Inventory>,
    inventory_hash: String,
    secrets: ClusterSecrets,
    dirs: Dirs,
    lock: RunLock,
    client: ProxmoxClient,
    journal: Arc<Journal>,
    /// Destroys without asking: the command made what it destroys.
    confirmed: bool,
}

/// How a phase of a command went.
pub struct PhaseResult {
    pub exit: Exit,
    pub elapsed: Duration,
    /// The journal's id of the run, when the phase ran one.
    pub run: Option<uuid::Uuid>,
}

impl<'a> Session<'a> {
    /// Loads the inventory and takes the lock; `Err(exit)` when the command
    /// cannot start (invalid inventory: 1, lock held: 3).
    pub async fn open(global: &'a GlobalArgs, command: &str) -> anyhow::Result<Result<Self, Exit>> {
        let Some(inventory) = load::inventory(global) else {
            return Ok(Err(Exit::Failure));
        };
        Self::open_with(global, command, inventory).await
    }

    /// Like [`Session::open`], for an inventory the command derived from the
    /// file (`kiln nightly`'s profile copy): its lock, secrets and VMs are
    /// those of the derived cluster.
    pub async fn open_with(
        global: &'a GlobalArgs,
        command: &str,
        inventory: Inventory,
    ) -> anyhow::Result<Result<Self, Exit>> {
        let bytes = std::fs::read(&global.inventory)
            .with_context(|| format!("cannot read {}", global.inventory.display()))?;
        let inventory_hash = hex::encode(Sha256::digest(bytes));
        let dirs = Dirs::from_env()?;
        let secrets = ClusterSecrets::open(&inventory, &dirs).await?;
        let journal = Arc::new(Journal::open(&dirs)?);
        let request = LockRequest::new(inventory.cluster.name.as_str(), &format!("kiln {command}"));
        let lock = match secrets.store().lock(request).await {
            Ok(lock) => lock,
            Err(error @ LockError::Held { .. }) => {
                eprintln!("kiln: {error}");
                return Ok(Err(Exit::LockHeld));
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(stale) = lock.taken_over() {
            eprintln!(
                "warning: took over a stale lock of run {} ({}@{}, last renewed {})",
                stale.run_id, stale.user, stale.host, stale.renewed
            );
        }
        let client = match proxmox_client(&inventory, &secrets).await {
            Ok(client) => client,
            Err(error) => {
                lock.release().await?;
                return Err(error.into());
            }
        };
        Ok(Ok(Self {
            global,
            command: command.to_owned(),
            inventory: Arc::new(inventory),
            inventory_hash,
            secrets,
            dirs,
            lock,
            client,
            journal,
            confirmed: false,
        }))
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Writes out the journal and releases the lock.
    pub async fn release(self) -> anyhow::Result<()> {
        let journal = self.journal.clone();
        let recorded = tokio::task::spawn_blocking(move || journal.close()).await?;
        self.lock.release().await?;
        recorded?;
        Ok(())
    }

    /// Destroys without asking from now on: for `kiln nightly`, whose
    /// ephemeral copy (its own cluster name and tag) is the command's to tear down.
    pub fn destroy_without_asking(&mut self) {
        self.confirmed = true;
    }

    pub fn client(&self) -> &ProxmoxClient {
        &self.client
    }

    /// The cluster's collector (inventory `agent.collector`), pinned as
    /// `kiln status` pins it; `None` without an `agent` section.
    pub async fn collector(&self) -> anyhow::Result<Option<CollectorLink>> {
        let Some(agent) = &self.inventory.agent else {
            return Ok(None);
        };
        let url = agent
            .collector
            .resolve()
            .map_err(|reason| anyhow::anyhow!("agent.collector: {reason}"))?;
        let fingerprint = load::collector_pin(&self.inventory, &self.secrets).await?;
        Ok(Some(CollectorLink {
            url: url.to_string(),
            trust: kiln_tls::Trust::Pin(fingerprint),
            cluster: self.inventory.cluster.name.to_string(),
        }))
    }

    /// Observes Proxmox, plans with `make_plan`, shows the plan, asks before
    /// destroying, and runs it.
    pub async fn converge(
        &self,
        phase: &str,
        make_plan: impl FnOnce(&Inventory, &[ObservedVm]) -> Result<Plan, Vec<PlanError>>,
    ) -> anyhow::Result<PhaseResult> {
        self.converge_watched(phase, make_plan, None).await
    }

    /// Revokes the collector tokens of `nodes`, whose VMs are gone for good
    /// (`kiln destroy`, `node remove`): their agents can no longer report.
    /// Without a collector database on this machine there is nothing to do.
    pub async fn revoke_agent_tokens(&self, nodes: Vec<String>) -> anyhow::Result<()> {
        let path = collector_dir(&self.dirs).join(DB_FILE);
        if !path.exists() {
            return Ok(());
        }
        let cluster = self.inventory.cluster.name.to_string();
        tokio::task::spawn_blocking(move || {
            let registry = TokenRegistry::open(&path)?;
            for node in &nodes {
                registry.revoke(&cluster, node)?;
            }
            Ok::<_, kiln_collector::CollectorError>(())
        })
        .await??;
        Ok(())
    }

    /// What Proxmox has now (after waiting out locks an earlier run left).
    pub async fn observed(&self) -> anyhow::Result<Vec<ObservedVm>> {
        self.observe_settled().await
    }

    /// [`Session::converge`], with the run's events also sent to `watcher`
    /// (a drill's or nightly's timeline).
    pub async fn converge_watched(
        &self,
        phase: &str,
        make_plan: impl FnOnce(&Inventory, &[ObservedVm]) -> Result<Plan, Vec<PlanError>>,
        watcher: Option<Arc<dyn EventSink>>,
    ) -> anyhow::Result<PhaseResult> {
        let started = std::time::Instant::now();
        let done = |exit| {
            Ok(PhaseResult {
                exit,
                elapsed: started.elapsed(),
                run: None,
            })
        };
        let observed = self.observe_settled().await?;
        let mut plan = match make_plan(&self.inventory, &observed) {
            Ok(plan) => plan,
            Err(errors) => {
                for error in &errors {
                    eprintln!("kiln: {error}");
                }
                return done(Exit::Failure);
            }
        };
        let storage = self.storage(&plan).await?;
        if let Some(run) = &storage {
            plan.storage = Some(storage_plan(run).await.context("cannot plan TrueNAS")?);
        }
        let text = self.global.output == OutputFormat::Text;
        if text {
            eprint!("{}", plan_view::text(&plan));
        }
        // Nodes left as they are still get the steps inside them (SSH, the
        // agent, healthy) when the inventory asks for those.
        let checks_nodes = self.inventory.ssh.is_some()
            && plan
                .nodes
                .iter()
                .any(|node| node.action == Action::Nothing && node.vmid.is_some());
        if !plan.has_changes() && !checks_nodes {
            if text {
                eprintln!("Nothing to do ({phase}): Proxmox matches the inventory.");
            }
            return done(Exit::Success);
        }
        if plan.is_destructive()
            && !self.global.yes
            && !self.confirmed
            && !confirm_destruction(self.inventory.cluster.name.as_str())?
        {
            eprintln!("Nothing changed.");
            return done(Exit::Failure);
        }
        let sink: Arc<dyn EventSink> = match watcher {
            Some(watcher) => Arc::new(Fanout(vec![self.sink(), watcher])),
            None => self.sink(),
        };
        let context = self.context(storage).await?;
        let run = context.run;
        let report = execute(context, &plan, self.label(phase), sink, interrupt()).await;
        for failure in &report.failures {
            eprintln!(
                "kiln: {} `{}` failed: {}",
                failure.node.as_deref().unwrap_or("cluster"),
                failure.step,
                failure.message
            );
        }
        let exit = match report.outcome {
            RunOutcome::Succeeded => Exit::Success,
            RunOutcome::Failed => Exit::Failure,
            RunOutcome::Interrupted => Exit::Interrupted,
        };
        Ok(PhaseResult {
            exit,
            elapsed: started.elapsed(),
            run: Some(run),
        })
    }

    /// What Proxmox has, once no VM of this cluster holds a lock: a task a
    /// killed run started (a clone, say) keeps its VM locked until it ends.
    async fn observe_settled(&self) -> anyhow::Result<Vec<ObservedVm>> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let tag = ownership_tag(self.inventory.cluster.name.as_str());
        loop {
            let observed = observe(&self.client, &self.inventory)
                .await
                .context("cannot read the VMs from Proxmox")?;
            // A clone in flight is only a temporary config (no name, tag or
            // marker yet), so wait for every clone lock too: they all end.
            let node_names: Vec<&str> = self
                .inventory
                .nodes
                .iter()
                .map(|node| node.name.as_str())
                .collect();
            let locked: Vec<String> = observed
                .iter()
                .filter(|vm| {
                    vm.tags.contains(&tag)
                        || vm
                            .config
                            .as_ref()
                            .is_some_and(|config| config.marker.is_some())
                        || node_names.contains(&vm.name.as_str())
                        || vm.lock.as_deref() == Some("clone")
                })
                .filter_map(|vm| {
                    vm.lock
                        .as_ref()
                        .map(|lock| format!("VM {} ({lock})", vm.vmid))
                })
                .collect();
            if locked.is_empty() || std::time::Instant::now() >= deadline {
                return Ok(observed);
            }
            eprintln!("kiln: waiting for Proxmox to unlock {}", locked.join(", "));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// TrueNAS, connected, when the inventory has storage and the plan
    /// leaves nodes to reach into (a run that only destroys needs no NAS).
    async fn storage(&self, plan: &Plan) -> anyhow::Result<Option<Arc<StorageRun>>> {
        let reaches_nodes = self.inventory.ssh.is_some()
            && plan.nodes.iter().any(|node| node.action != Action::Destroy);
        if !reaches_nodes {
            return Ok(None);
        }
        let setup = kiln::storage::connect(&self.inventory, &self.secrets).await?;
        Ok(setup.map(|setup| Arc::new(StorageRun::new(setup))))
    }

    async fn context(&self, storage: Option<Arc<StorageRun>>) -> anyhow::Result<Arc<Context>> {
        let (authorized_keys, hosts) = match &self.inventory.ssh {
            Some(ssh) => {
                let pair = self.secrets.ssh_keypair(&self.inventory).await?;
                let cluster = self.inventory.cluster.name.as_str();
                let access =
                    HostAccess::new(ssh, cluster, pair.private_key.clone(), &self.dirs.state);
                (
                    vec![pair.public_key.parse::<SshPublicKey>()?],
                    Some(Arc::new(access)),
                )
            }
            None => (Vec::new(), None),
        };
        let agents = match (&self.inventory.agent, &hosts) {
            (Some(_), Some(_)) => Some(Arc::new(self.agent_rollout().await?)),
            _ => None,
        };
        // Each phase (rebuild has two) is a run of its own in the journal.
        let run = uuid::Uuid::now_v7();
        Ok(Arc::new(Context {
            client: self.client.clone(),
            inventory: self.inventory.clone(),
            run,
            authorized_keys,
            timeouts: Timeouts::default(),
            hosts,
            agents,
            storage,
        }))
    }

    /// What deploying the agents needs: the local `kiln-agent` binary, the
    /// collector, and each node's token from the store.
    async fn agent_rollout(&self) -> anyhow::Result<AgentRollout> {
        let bundle = AgentBundle::locate()?;
        let collector = self
            .collector()
            .await?
            .context("the inventory has no `agent` section")?;
        let tokens = agent_tokens(
            self.secrets.store(),
            self.inventory.nodes.iter().map(|node| node.name.as_str()),
        )
        .await?
        .into_iter()
        .map(|(node, token)| (node, token.token))
        .collect();
        Ok(AgentRollout {
            bundle,
            collector,
            registry: collector_dir(&self.dirs).join(DB_FILE),
            tokens,
            unit: kiln_agent::SYSTEMD_UNIT.to_owned(),
        })
    }

    pub fn label(&self, phase: &str) -> RunLabel {
        let holder = self.lock.holder();
        let command = if phase == self.command {
            self.command.clone()
        } else {
            format!("{} ({phase})", self.command)
        };
        RunLabel {
            command,
            inventory_hash: self.inventory_hash.clone(),
            operator: format!("{}@{}", holder.user, holder.host),
        }
    }

    pub fn sink(&self) -> Arc<dyn EventSink> {
        let progress: Arc<dyn EventSink> = match self.global.output {
            OutputFormat::Json => Arc::new(progress::JsonEvents),
            OutputFormat::Text if progress::live(self.global.progress) => {
                Arc::new(progress::LiveLines::new())
            }
            OutputFormat::Text => Arc::new(progress::PlainLines::new()),
        };
        Arc::new(Fanout(vec![progress, self.journal.clone()]))
    }
}

/// Turns `true` at the first Ctrl-C.
pub fn interrupt() -> watch::Receiver<bool> {
    let (interrupt, interrupted) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "kiln: interrupted — letting running Proxmox tasks finish, starting nothing new"
            );
            let _ = interrupt.send(true);
        }
    });
    interrupted
}

/// Asks for the cluster's name before VMs are destroyed; off a terminal
/// there is no one to ask, so only `--yes` proceeds.
pub fn confirm_destruction(cluster: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "kiln: this plan destroys VMs and there is no terminal to confirm it: rerun with --yes"
        );
        return Ok(false);
    }
    eprint!("This plan destroys VMs. Type the cluster name (`{cluster}`) to go on: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == cluster)
}
