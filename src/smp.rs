//! Secondary CPUs. (Bring-up lands with the SMP issue; for now the boot CPU is alone.)

/// Stops every other CPU so one CPU's oops is not buried under others' output.
pub fn stop_others() {}
