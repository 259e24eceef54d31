"""The names the evaluator's records use: benchmarks and distance functions.

Their one owner, importable without JAX: the report (evaluator.report) checks and orders these
names but never computes a distance, so it starts without loading JAX (about 2 s).
"""

BENCHMARK_NAMES = ("proxy", "bapps", "nights", "tid2013", "kadid10k")
DIR_BENCHMARKS = ("bapps", "nights", "tid2013", "kadid10k")  # perceptual.<name>_dir
FULL_SIZE = ("nights", "tid2013", "kadid10k")  # read at a resolution (evaluator.imagesets)
MOS_BENCHMARKS = ("tid2013", "kadid10k")  # mean opinion scores: rank correlations

FEATURE_DISTANCES = ("local", "meanpool", "style")
LEARNED_DISTANCES = ("lin",)  # scored only where fitted (perceptual.calibrate)
ALL_DISTANCES = FEATURE_DISTANCES + LEARNED_DISTANCES
PIXEL_METRICS = ("l2", "ssim", "psnr")
