//! containerd's side of CRIU checkpoints ([`crate::checkpoint::criu_image::TaskImages`]):
//! `Tasks.Checkpoint`, `Content.Read` and `Content.Write` over the agent's containerd
//! connection, nothing else. What is done with them is `checkpoint::criu_image`'s.

use crate::checkpoint::criu_image::{Blob, Call, TaskImages};
use crate::source::containerd::{Connection, RuntimeError};
use containerd_client::services::v1::{
    CheckpointTaskRequest, ReadContentRequest, WriteAction, WriteContentRequest,
};
use containerd_client::types::Descriptor;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// A checkpoint freezes and dumps every process of the container: bounded, but not by
/// the ordinary call timeout.
pub const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes per `Content.Write` message (containerd's own clients use 1 MiB).
const CHUNK: usize = 1 << 20;
/// The label that keeps an imported blob from containerd's garbage collector until the
/// task made from it holds it (containerd's `gc.root`).
const GC_ROOT: &str = "containerd.io/gc.root";

/// containerd's task and content services in one namespace.
pub struct ContainerdImages<'a> {
    pub conn: &'a Connection,
    pub namespace: &'a str,
}

fn descriptor(blob: &Blob) -> Descriptor {
    Descriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.clone(),
        size: i64::try_from(blob.size).unwrap_or(i64::MAX),
        annotations: Default::default(),
    }
}

/// containerd's descriptor as a [`Blob`]; a negative size is refused.
pub fn blob(d: &Descriptor) -> Result<Blob, String> {
    Ok(Blob {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: u64::try_from(d.size)
            .map_err(|_| format!("blob {} has size {}", d.digest, d.size))?,
    })
}

/// The descriptor `Tasks.Create` takes as `checkpoint`.
pub fn checkpoint_descriptor(blob: &Blob) -> Descriptor {
    descriptor(blob)
}

impl ContainerdImages<'_> {
    async fn client(&self) -> Result<containerd_client::Client, String> {
        Ok(containerd_client::Client::from(
            self.conn.channel().await.map_err(|e| e.to_string())?,
        ))
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, String> {
        self.conn
            .request(message, self.namespace)
            .map_err(|e| e.to_string())
    }

    fn refused(&self, call: &'static str, status: &tonic::Status) -> String {
        self.conn.refused(call, self.namespace, status).to_string()
    }
}

impl TaskImages for ContainerdImages<'_> {
    fn checkpoint<'a>(&'a self, container_id: &'a str) -> Call<'a, Vec<Blob>> {
        Box::pin(async move {
            let client = self.client().await?;
            let request = self.request(CheckpointTaskRequest {
                container_id: container_id.to_owned(),
                ..Default::default()
            })?;
            let answer =
                tokio::time::timeout(CHECKPOINT_TIMEOUT, client.tasks().checkpoint(request))
                    .await
                    .map_err(|_| {
                        RuntimeError::Timeout {
                            socket: self.conn.socket_name(),
                            call: "Tasks.Checkpoint",
                            timeout: CHECKPOINT_TIMEOUT,
                        }
                        .to_string()
                    })?
                    .map_err(|s| self.refused("Tasks.Checkpoint", &s))?;
            answer.into_inner().descriptors.iter().map(blob).collect()
        })
    }

    fn read<'a>(&'a self, blob: &'a Blob, out: &'a mut std::fs::File) -> Call<'a, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            let request = self.request(ReadContentRequest {
                digest: blob.digest.clone(),
                offset: 0,
                size: 0,
            })?;
            let mut stream = client
                .content()
                .read(request)
                .await
                .map_err(|s| self.refused("Content.Read", &s))?
                .into_inner();
            let mut written = 0u64;
            while let Some(chunk) = stream
                .message()
                .await
                .map_err(|s| self.refused("Content.Read", &s))?
            {
                // Never more than the descriptor says: a misbehaving store cannot fill
                // the disk.
                written += chunk.data.len() as u64;
                if written > blob.size {
                    return Err(format!(
                        "Content.Read of {} sent more than its {} bytes",
                        blob.digest, blob.size
                    ));
                }
                out.write_all(&chunk.data)
                    .map_err(|e| format!("writing blob {}: {e}", blob.digest))?;
            }
            Ok(written)
        })
    }

    fn write<'a>(&'a self, blob: &'a Blob, file: &'a Path) -> Call<'a, ()> {
        Box::pin(async move {
            let source = std::fs::File::open(file)
                .map_err(|e| format!("opening {}: {e}", file.display()))?;
            // Streamed through a small channel: a large image never sits in memory.
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let blob_sent = blob.clone();
            let reader = tokio::task::spawn_blocking(move || send_blob(source, &blob_sent, &tx));
            let client = self.client().await?;
            let request = self.request(tokio_stream::wrappers::ReceiverStream::new(rx))?;
            let written = match client.content().write(request).await {
                Ok(answer) => {
                    let mut answers = answer.into_inner();
                    loop {
                        match answers.message().await {
                            Ok(Some(_)) => continue,
                            Ok(None) => break Ok(()),
                            Err(s) => break Err(s),
                        }
                    }
                }
                Err(s) => Err(s),
            };
            let read = reader
                .await
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            read.map_err(|e| format!("reading {}: {e}", file.display()))?;
            match written {
                Ok(()) => Ok(()),
                // The blob is there already (an earlier restore): nothing to write.
                Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
                Err(s) => Err(self.refused("Content.Write", &s)),
            }
        })
    }
}

/// Sends `source` as `Content.Write` messages for `blob`, then the commit (with the
/// expected digest and size, which containerd checks, and a `gc.root` label).
fn send_blob(
    mut source: std::fs::File,
    blob: &Blob,
    tx: &tokio::sync::mpsc::Sender<WriteContentRequest>,
) -> std::io::Result<()> {
    let total = i64::try_from(blob.size).unwrap_or(i64::MAX);
    let reference = format!("aistor-restore-{}", blob.digest);
    let mut offset = 0i64;
    let mut buf = vec![0; CHUNK];
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let message = WriteContentRequest {
            action: WriteAction::Write as i32,
            r#ref: reference.clone(),
            total,
            offset,
            data: buf[..n].to_vec(),
            ..Default::default()
        };
        offset += n as i64;
        if tx.blocking_send(message).is_err() {
            // containerd ended the call; its answer says why.
            return Ok(());
        }
    }
    let commit = WriteContentRequest {
        action: WriteAction::Commit as i32,
        r#ref: reference,
        total,
        expected: blob.digest.clone(),
        offset,
        labels: [(
            GC_ROOT.to_owned(),
            crate::clock::wall_unix_nanos().to_string(),
        )]
        .into(),
        ..Default::default()
    };
    let _ = tx.blocking_send(commit);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_and_blobs_map_both_ways() {
        let d = Descriptor {
            media_type: "m".into(),
            digest: "sha256:ab".into(),
            size: 7,
            annotations: Default::default(),
        };
        let b = blob(&d).unwrap();
        assert_eq!(
            (b.media_type.as_str(), b.digest.as_str(), b.size),
            ("m", "sha256:ab", 7)
        );
        assert_eq!(checkpoint_descriptor(&b), d);
        let negative = Descriptor { size: -1, ..d };
        assert!(blob(&negative).unwrap_err().contains("size -1"));
        let huge = Blob {
            size: u64::MAX,
            ..b
        };
        assert_eq!(checkpoint_descriptor(&huge).size, i64::MAX);
    }
}
