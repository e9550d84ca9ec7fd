"""`crowdsight eval attributes`: clothing-colour accuracy on PETA (placeholder, filled below)."""
