//! aistor node agent.
