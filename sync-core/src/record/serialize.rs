//! The user's serde types converted into rows (filled in by the row-codec work).
