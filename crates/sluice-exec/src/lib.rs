//! The sluice executor: runs a compiled plan artifact over a transport, wave by wave, with
//! health checks, failure budgets and automatic rollback.
