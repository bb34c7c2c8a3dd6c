//! Progress off a terminal: a line every so often in a CI log, so a long install is never silent.
