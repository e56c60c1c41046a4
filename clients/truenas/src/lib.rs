//! kiln-truenas: kiln's TrueNAS client (JSON-RPC 2.0 over WebSocket).
