"""perceptual-sweeps evaluator: perceptual distances, benchmarks, the checkpoint-scoring job, the report."""
