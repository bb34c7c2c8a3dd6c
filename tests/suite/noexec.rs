//! A cache on a noexec mount: detected once, said with the fix, and checked by doctor.
