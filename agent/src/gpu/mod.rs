//! GPUs: the node's devices, how busy they are, and which pods use them.
//!
//! A [`GpuSource`] reads the devices once per tick into the wire's `GpuSection`, with
//! per-process use carrying *host* pids. Attribution to pods and containers happens
//! afterwards, the same way for every source (see `attribution`), so NVML and the
//! DCGM exporter agree on who uses what.

pub mod attribution;
pub mod dcgm;
pub mod device;
pub mod fake;
pub mod nvml;
pub mod pids;
pub mod podresources;

use aistor_proto::v1 as pb;

/// One source of GPU readings.
pub trait GpuSource: Send {
    /// Reads every device. A device that fails is reported with its `missing` reasons
    /// while the others go on; a source that cannot read at all returns an empty
    /// `gpus` with the reason in the section's `missing`. Never panics.
    fn read(&mut self) -> pb::GpuSection;
}

/// The section for a node where GPUs are not measured, saying why.
pub fn unavailable(source: pb::GpuSource, reason: impl Into<String>) -> pb::GpuSection {
    pb::GpuSection {
        source: source as i32,
        missing: vec![pb::Missing {
            field: "gpus".into(),
            reason: reason.into(),
        }],
        ..Default::default()
    }
}

/// A source whose every section also carries a note: with `--gpu-source auto`, why
/// the preferred source was not used.
pub struct WithNote<S> {
    inner: S,
    field: String,
    note: String,
}

impl<S: GpuSource> WithNote<S> {
    pub fn new(inner: S, field: impl Into<String>, note: impl Into<String>) -> Self {
        Self {
            inner,
            field: field.into(),
            note: note.into(),
        }
    }
}

impl<S: GpuSource> GpuSource for WithNote<S> {
    fn read(&mut self) -> pb::GpuSection {
        let mut section = self.inner.read();
        section.missing.push(pb::Missing {
            field: self.field.clone(),
            reason: self.note.clone(),
        });
        section
    }
}
