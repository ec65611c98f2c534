"""One module per chat platform. Each turns platform updates into `Incoming`, hands them to the
engine callback, and renders `Outgoing`; each also offers a `send` for the outbox."""
