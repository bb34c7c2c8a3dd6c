//! The cache under the faults of issue 21: an image layer (overlayfs, EXDEV), locks and entries replaced by directories or symlinks, inode exhaustion, bytecode temp files left by killed runs.
