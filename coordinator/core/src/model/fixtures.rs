//! Test fixtures shared by the model's tests: a pod of given containers, and a
//! measured container.

use super::{
    Container, ContainerState, DiscoveredBy, Pod, PodKey, PodWindow, QosClass, Requests, Usage,
};

/// A running-shaped container named `name` with the given requests and state.
pub(crate) fn container(
    name: &str,
    requests: Option<Requests>,
    state: ContainerState,
) -> Container {
    Container {
        id: format!("id-{name}").into(),
        name: name.into(),
        image: "img".into(),
        state,
        restart_count: None,
        requests,
        usage: Usage::default(),
        gpus: Box::new([]),
    }
}

/// Pod `ml/trainer` (uid `u1`) with `containers`.
pub(crate) fn pod(containers: Vec<Container>) -> Pod {
    Pod {
        key: PodKey {
            namespace: "ml".into(),
            name: "trainer".into(),
            uid: "u1".into(),
        },
        qos_class: QosClass::Burstable,
        cgroup_path: "kubepods/burstable/podu1".into(),
        discovered_by: DiscoveredBy::Containerd,
        usage: Usage::default(),
        containers: containers.into_boxed_slice(),
        gpus: Box::new([]),
        window: PodWindow::default(),
        labels: Box::new([]),
    }
}
