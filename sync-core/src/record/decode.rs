//! JSON pages decoded straight into rows (filled in by the row-codec work).
