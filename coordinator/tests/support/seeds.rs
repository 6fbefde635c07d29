//! The autoscaler requests of seeds 000 and 004, verbatim (bodies as printed there).

/// Seed 004, "Create Autoscaler", request body as printed.
pub const SEED_004_CREATE: &str = r#"{
  "workload_name": "nginx-deployment",
  "workload_namespace": "default",
  "workload_type": "Deployment",
  "min_replicas": 2,
  "max_replicas": 10,
  "target_cpu_percent": 70,
  "target_memory_percent": 80,
  "target_gpu_percent": 75,
  "target_storage_read_throughput_mbps": 500,
  "target_storage_write_throughput_mbps": 200,
  "target_storage_iops": 3000,
  "scale_up_policy": {
    "stabilization_window_seconds": 60,
    "max_scale_change": 3
  },
  "scale_down_policy": {
    "stabilization_window_seconds": 300,
    "max_scale_change": 2
  }
}"#;

/// Seed 004, the curl example's body.
pub const SEED_004_CURL: &str = r#"{
    "workload_name": "ai-training-job",
    "workload_namespace": "ml-workloads",
    "workload_type": "Deployment",
    "min_replicas": 1,
    "max_replicas": 5,
    "target_cpu_percent": 70,
    "target_gpu_percent": 80,
    "scale_up_policy": {
      "stabilization_window_seconds": 60,
      "max_scale_change": 2
    },
    "scale_down_policy": {
      "stabilization_window_seconds": 300,
      "max_scale_change": 1
    }
  }"#;

/// Seed 004's examples 3 (a StatefulSet) and 5 (storage only).
pub const SEED_004_GPU_TRAINING: &str = r#"{
  "workload_name": "model-training",
  "workload_namespace": "research",
  "workload_type": "StatefulSet",
  "min_replicas": 1,
  "max_replicas": 4,
  "target_gpu_percent": 85,
  "scale_down_policy": {
    "stabilization_window_seconds": 900,
    "max_scale_change": 1
  }
}"#;
pub const SEED_004_STORAGE_ONLY: &str = r#"{
  "workload_name": "data-preprocessing",
  "workload_namespace": "etl",
  "workload_type": "Deployment",
  "min_replicas": 1,
  "max_replicas": 10,
  "target_storage_read_throughput_mbps": 800,
  "target_storage_write_throughput_mbps": 300,
  "target_storage_iops": 5000,
  "scale_up_policy": {
    "stabilization_window_seconds": 60,
    "max_scale_change": 3
  }
}"#;

/// Seed 000, "오토스케일러 생성" (lower-case type, a check interval), on `/autoscalers`.
pub const SEED_000_CREATE: &str = r#"{
    "workload_name": "gpu-test-workload",
    "workload_namespace": "default",
    "workload_type": "deployment",
    "min_replicas": 1,
    "max_replicas": 5,
    "target_cpu_percent": 70,
    "target_memory_percent": 80,
    "target_gpu_percent": 60,
    "scale_check_interval": 30
  }"#;
