//! The shim under the faults of issue 21: stale locks whose pid was reused, URLs that are not http(s), a second user's run, a relative HOME, wget's reasons.
