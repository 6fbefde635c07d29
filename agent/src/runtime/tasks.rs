//! The containerd calls the local runtime makes for one container instance: create it
//! (with its snapshot when it runs an image), start its task with stdout and stderr
//! appended to the log file, wait for it, signal it, delete it. Every call names the
//! container; "not found" on cleanup is success, so cleanup can be repeated after a crash.

use super::plan::labels;
use crate::source::containerd::{Connection, RuntimeError};
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, ExecProcessRequest, KillRequest, ListContainersRequest, ListTasksRequest,
    StartRequest, UpdateContainerRequest, WaitRequest,
};
use containerd_client::types::v1::{Process, Status};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RUNC: &str = "io.containerd.runc.v2";

/// Where and how containers are created.
#[derive(Debug)]
pub struct Tasks {
    pub conn: Connection,
    pub namespace: String,
    pub snapshotter: String,
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub at_unix_nanos: u64,
}

/// A container the local runtime created, as containerd lists it.
#[derive(Debug, Clone)]
pub struct Managed {
    pub id: String,
    pub created_unix_nanos: u64,
    pub labels: HashMap<String, String>,
    pub task: Option<Process>,
}

impl Managed {
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }

    /// How it ended, when it ended for good and was kept ([`Tasks::keep_finished`]).
    pub fn recorded_exit(&self) -> Option<Exit> {
        Some(Exit {
            code: self.label(labels::EXIT_CODE).parse().ok()?,
            at_unix_nanos: self.label(labels::FINISHED_AT).parse().unwrap_or(0),
        })
    }

    /// The task's pid while its process exists.
    pub fn running_pid(&self) -> Option<u32> {
        let task = self.task.as_ref()?;
        matches!(
            Status::try_from(task.status),
            Ok(Status::Running | Status::Paused | Status::Pausing)
        )
        .then_some(task.pid)
        .filter(|pid| *pid != 0)
    }
}

/// A command run as root in `/` with a plain `PATH` (probes, local-runtime hooks).
pub fn root_process(command: &[String]) -> serde_json::Value {
    serde_json::json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": command,
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
    })
}

fn exit_code(status: u32) -> i32 {
    // containerd reports 128+signal for a killed process, as shells do; anything
    // larger than i32 cannot be an exit status.
    i32::try_from(status).unwrap_or(-1)
}

fn nanos(ts: Option<prost_types::Timestamp>) -> u64 {
    ts.map_or(0, |t| {
        u64::try_from(t.seconds)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.nanos).unwrap_or(0))
    })
}

impl Tasks {
    async fn client(&self) -> Result<containerd_client::Client, RuntimeError> {
        Ok(containerd_client::Client::from(self.conn.channel().await?))
    }

    /// Creates the container (and, with `chain_id`, its writable snapshot on the image's
    /// layers). Returns the rootfs mounts the task needs.
    pub async fn create(
        &self,
        id: &str,
        image: &str,
        chain_id: Option<&str>,
        spec: &serde_json::Value,
        container_labels: &BTreeMap<String, String>,
    ) -> Result<Vec<containerd_client::types::Mount>, RuntimeError> {
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        let container = Container {
            id: id.to_owned(),
            labels: container_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            image: image.to_owned(),
            runtime: Some(Runtime {
                name: RUNC.to_owned(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE_URL.to_owned(),
                value: serde_json::to_vec(spec).unwrap_or_default(),
            }),
            snapshotter: chain_id.map_or(String::new(), |_| self.snapshotter.clone()),
            snapshot_key: chain_id.map_or(String::new(), |_| id.to_owned()),
            ..Container::default()
        };
        // The container first: it references the snapshot, so containerd's garbage
        // collector never sees the snapshot unreferenced.
        self.conn
            .call(
                "Containers.Create",
                ns,
                client.containers().create(self.conn.request(
                    CreateContainerRequest {
                        container: Some(container),
                    },
                    ns,
                )?),
            )
            .await?;
        let Some(parent) = chain_id else {
            return Ok(Vec::new());
        };
        let prepared = self
            .conn
            .call(
                "Snapshots.Prepare",
                ns,
                client.snapshots().prepare(self.conn.request(
                    PrepareSnapshotRequest {
                        snapshotter: self.snapshotter.clone(),
                        key: id.to_owned(),
                        parent: parent.to_owned(),
                        labels: HashMap::new(),
                    },
                    ns,
                )?),
            )
            .await?;
        Ok(prepared.mounts)
    }

    /// Creates and starts the task; stdout and stderr are appended to `log` by the shim
    /// (`file://`), so output survives an agent restart. With `checkpoint` (a CRIU image
    /// in containerd's content store) the task is restored from it. Returns the pid.
    pub async fn start(
        &self,
        id: &str,
        rootfs: Vec<containerd_client::types::Mount>,
        log: &Path,
        checkpoint: Option<containerd_client::types::Descriptor>,
    ) -> Result<u32, RuntimeError> {
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        let uri = format!("file://{}", log.display());
        self.conn
            .call(
                "Tasks.Create",
                ns,
                client.tasks().create(self.conn.request(
                    CreateTaskRequest {
                        container_id: id.to_owned(),
                        rootfs,
                        stdout: uri.clone(),
                        stderr: uri,
                        checkpoint,
                        ..CreateTaskRequest::default()
                    },
                    ns,
                )?),
            )
            .await?;
        let started = self
            .conn
            .call(
                "Tasks.Start",
                ns,
                client.tasks().start(self.conn.request(
                    StartRequest {
                        container_id: id.to_owned(),
                        ..StartRequest::default()
                    },
                    ns,
                )?),
            )
            .await?;
        Ok(started.pid)
    }

    /// Waits for the task to exit, however long that takes (no call timeout).
    pub async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        let waited = client
            .tasks()
            .wait(self.conn.request(
                WaitRequest {
                    container_id: id.to_owned(),
                    ..WaitRequest::default()
                },
                ns,
            )?)
            .await
            .map_err(|status| self.conn.refused("Tasks.Wait", ns, &status))?
            .into_inner();
        Ok(Exit {
            code: exit_code(waited.exit_status),
            at_unix_nanos: nanos(waited.exited_at),
        })
    }

    /// Sends `signal` to the task's processes; a task that is gone is not an error.
    pub async fn kill(&self, id: &str, signal: u32) -> Result<(), RuntimeError> {
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        let killed = self
            .conn
            .call(
                "Tasks.Kill",
                ns,
                client.tasks().kill(self.conn.request(
                    KillRequest {
                        container_id: id.to_owned(),
                        signal,
                        all: true,
                        ..KillRequest::default()
                    },
                    ns,
                )?),
            )
            .await;
        match killed {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes the task only; how it ended when there was one.
    pub async fn delete_task(&self, id: &str) -> Result<Option<Exit>, RuntimeError> {
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        let deleted = self
            .conn
            .call(
                "Tasks.Delete",
                ns,
                client.tasks().delete(self.conn.request(
                    DeleteTaskRequest {
                        container_id: id.to_owned(),
                    },
                    ns,
                )?),
            )
            .await;
        match deleted {
            Ok(d) => Ok(Some(Exit {
                code: exit_code(d.exit_status),
                at_unix_nanos: nanos(d.exited_at),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keeps a container that ended for good: its task is deleted (no shim stays
    /// behind) and its exit recorded in its labels, as the kubelet keeps exited
    /// containers, so an agent that restarts sees it ran and does not run it again.
    pub async fn keep_finished(&self, id: &str, exit: Exit) -> Result<(), RuntimeError> {
        self.delete_task(id).await?;
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        let labels: HashMap<String, String> = [
            (labels::EXIT_CODE.to_owned(), exit.code.to_string()),
            (
                labels::FINISHED_AT.to_owned(),
                exit.at_unix_nanos.to_string(),
            ),
        ]
        .into();
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        self.conn
            .call(
                "Containers.Update",
                ns,
                client.containers().update(self.conn.request(
                    UpdateContainerRequest {
                        container: Some(Container {
                            id: id.to_owned(),
                            labels,
                            ..Container::default()
                        }),
                        update_mask: Some(prost_types::FieldMask { paths }),
                    },
                    ns,
                )?),
            )
            .await
            .map(drop)
    }

    /// Deletes the task, the container and its snapshot; each part already gone is fine.
    /// Returns how the task ended when there was one (an exit the agent did not see
    /// happen, e.g. while it was down).
    pub async fn remove(&self, id: &str) -> Result<Option<Exit>, RuntimeError> {
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        let gone = |r: Result<(), RuntimeError>| match r {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        };
        let exit = self.delete_task(id).await?;
        gone(
            self.conn
                .call(
                    "Containers.Delete",
                    ns,
                    client.containers().delete(
                        self.conn
                            .request(DeleteContainerRequest { id: id.to_owned() }, ns)?,
                    ),
                )
                .await
                .map(drop),
        )?;
        gone(
            self.conn
                .call(
                    "Snapshots.Remove",
                    ns,
                    client.snapshots().remove(self.conn.request(
                        RemoveSnapshotRequest {
                            snapshotter: self.snapshotter.clone(),
                            key: id.to_owned(),
                        },
                        ns,
                    )?),
                )
                .await
                .map(drop),
        )?;
        Ok(exit)
    }

    /// Runs `command` inside the container's namespaces (a probe or a checkpoint hook)
    /// and returns its exit code; `timeout` bounds the whole exec.
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        command: &[String],
        timeout: std::time::Duration,
    ) -> Result<i32, RuntimeError> {
        self.exec_process(id, exec_id, &root_process(command), timeout)
            .await
    }

    /// Runs the OCI `process` (its `args` the command) inside the container's
    /// namespaces and returns its exit code; `timeout` bounds the whole exec.
    pub async fn exec_process(
        &self,
        id: &str,
        exec_id: &str,
        process: &serde_json::Value,
        timeout: std::time::Duration,
    ) -> Result<i32, RuntimeError> {
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        self.conn
            .call(
                "Tasks.Exec",
                ns,
                client.tasks().exec(self.conn.request(
                    ExecProcessRequest {
                        container_id: id.to_owned(),
                        exec_id: exec_id.to_owned(),
                        spec: Some(prost_types::Any {
                            type_url: PROCESS_TYPE_URL.to_owned(),
                            value: serde_json::to_vec(process).unwrap_or_default(),
                        }),
                        ..ExecProcessRequest::default()
                    },
                    ns,
                )?),
            )
            .await?;
        let run = async {
            // Wait is subscribed before start, so a fast exit is not missed.
            let mut waiter = client.tasks();
            let mut starter = client.tasks();
            let wait = waiter.wait(self.conn.request(
                WaitRequest {
                    container_id: id.to_owned(),
                    exec_id: exec_id.to_owned(),
                },
                ns,
            )?);
            let start = self.conn.call(
                "Tasks.Start",
                ns,
                starter.start(self.conn.request(
                    StartRequest {
                        container_id: id.to_owned(),
                        exec_id: exec_id.to_owned(),
                    },
                    ns,
                )?),
            );
            let (waited, started) = tokio::join!(wait, start);
            started?;
            waited
                .map(|w| exit_code(w.into_inner().exit_status))
                .map_err(|status| self.conn.refused("Tasks.Wait", ns, &status))
        };
        let outcome = tokio::time::timeout(timeout, run).await;
        // The exec process is deleted whatever happened, so it never lingers.
        if outcome.is_err() {
            let _ = self
                .conn
                .call(
                    "Tasks.Kill",
                    ns,
                    client.tasks().kill(self.conn.request(
                        KillRequest {
                            container_id: id.to_owned(),
                            exec_id: exec_id.to_owned(),
                            signal: 9,
                            all: false,
                        },
                        ns,
                    )?),
                )
                .await;
        }
        let _ = self
            .conn
            .call(
                "Tasks.DeleteProcess",
                ns,
                client.tasks().delete_process(self.conn.request(
                    containerd_client::services::v1::DeleteProcessRequest {
                        container_id: id.to_owned(),
                        exec_id: exec_id.to_owned(),
                    },
                    ns,
                )?),
            )
            .await;
        match outcome {
            Ok(result) => result,
            Err(_) => Err(RuntimeError::Timeout {
                socket: self.conn.socket_name(),
                call: "exec",
                timeout,
            }),
        }
    }

    /// Every container the local runtime created, with its task.
    pub async fn list_managed(&self) -> Result<Vec<Managed>, RuntimeError> {
        let client = self.client().await?;
        let ns = self.namespace.as_str();
        let filter = format!(
            "labels.\"{}\"=={}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_VALUE
        );
        let containers = self
            .conn
            .call(
                "Containers.List",
                ns,
                client.containers().list(self.conn.request(
                    ListContainersRequest {
                        filters: vec![filter],
                    },
                    ns,
                )?),
            )
            .await?
            .containers;
        let tasks = self
            .conn
            .call(
                "Tasks.List",
                ns,
                client
                    .tasks()
                    .list(self.conn.request(ListTasksRequest::default(), ns)?),
            )
            .await?
            .tasks;
        let mut tasks: HashMap<String, Process> = tasks
            .into_iter()
            .map(|t| {
                let id = if t.container_id.is_empty() {
                    t.id.clone()
                } else {
                    t.container_id.clone()
                };
                (id, t)
            })
            .collect();
        Ok(containers
            .into_iter()
            // containerd applies the filter; checked again so a containerd that ignored
            // it can never make us touch the kubelet's containers.
            .filter(|c| {
                c.labels.get(labels::MANAGED_BY).map(String::as_str)
                    == Some(labels::MANAGED_BY_VALUE)
            })
            .map(|c| Managed {
                task: tasks.remove(&c.id),
                created_unix_nanos: nanos(c.created_at),
                id: c.id,
                labels: c.labels,
            })
            .collect())
    }
}
