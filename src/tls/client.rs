//! How `chat-client` decides to trust a server.
