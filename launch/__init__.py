"""perceptual-sweeps launchers: a sweep file -> trials -> jobs (local, Slurm, TPU)."""
