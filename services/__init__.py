"""Domain rules and transactions, channel-free. Every function takes the session it works in."""
