//! No cycles between the coordinator's top-level modules (see `hack/module_graph.rs` for
//! the rule and how it is read). The checker's own tests run here too.

#[path = "../../hack/module_graph.rs"]
mod module_graph;

#[test]
fn the_coordinator_has_no_module_cycles() {
    module_graph::assert_no_cycles(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}
