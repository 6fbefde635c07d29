//! Pod migration, pure: the [`plan`] (what happens to each container and which strategy
//! the volumes allow), the [`target`] pod built from the source, and the [`machine`]
//! that moves one migration from phase to phase. The shell stores every transition the
//! machine makes before it carries out the action that comes with it, so a coordinator
//! that stops at any point resumes from the stored phase against the world as it finds it.

pub mod machine;
pub mod plan;
pub mod target;

pub use plan::{
    Action, ContainerInput, ContainerPlan, ContainerState, Plan, PlanInput, Refused, RestartPolicy,
    Strategy, input_from_pod, plan,
};
