"""ablate: run, record and report ablation studies of RGB-T crowd-counting models."""
