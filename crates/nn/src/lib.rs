//! Neural-network building blocks (filled in by its own issue).
