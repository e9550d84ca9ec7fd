"""Core data types and geometry shared by every stage."""
