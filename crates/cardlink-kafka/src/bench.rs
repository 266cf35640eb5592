//! The end-to-end benchmark (to come).
