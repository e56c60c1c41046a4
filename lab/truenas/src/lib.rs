//! kiln-lab-truenas: a TrueNAS API emulator held to the official method schemas.
