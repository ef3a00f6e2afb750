//! Model-based strategy tests.
