"""Training infrastructure shared by every learner: checkpoints, run directories, progress, loops."""
