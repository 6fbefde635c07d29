//! A CPU burner for benchmarks and live tests: busy for a duty cycle of one core, optionally
//! printing its own CPU clock (CLOCK_PROCESS_CPUTIME_ID) as ground truth.
//!
//!     target/release/examples/burner 0.25 --trace --seconds 30
//!
//! See `support/live.rs` for the options.

#[path = "support/live.rs"]
mod live;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", live::BURNER_USAGE);
        return;
    }
    if let Err(e) = live::burner_main(&args) {
        eprintln!("burner: {e}\n{}", live::BURNER_USAGE);
        std::process::exit(2);
    }
}
