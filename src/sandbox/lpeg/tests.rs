//! Unit tests of the LPeg engine.
