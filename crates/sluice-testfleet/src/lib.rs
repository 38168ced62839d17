//! Test fleets of real OpenSSH `sshd` processes on 127.0.0.1, for tests and benchmarks.
