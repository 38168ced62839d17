//! Building an [`Inventory`]: every source adds groups, hosts, children and variables here, and
//! [`Builder::finish`] applies the rules every inventory shares.
//!
//! The rules, as Ansible's `InventoryData.reconcile_inventory` applies them:
//! 1. `all` and `ungrouped` always exist, `ungrouped` a child of `all`;
//! 2. a group with no parent becomes a child of `all`;
//! 3. a host in no group but `ungrouped` is listed in `ungrouped`; a host listed in `ungrouped`
//!    and in another group is taken out of `ungrouped`;
//! 4. children never form a cycle (reported, naming it);
//! 5. a group's depth is the longest chain of parents from `all`; a host's groups are ordered by
//!    depth, then by the source's [`GroupOrder`], for variable precedence.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::{
    ALL, ConnectionDecl, GroupDecl, GroupOrder, HostDecl, Inventory, InventoryFormat, Origin,
    UNGROUPED, Vars,
};
use crate::diagnostic::{Diagnostic, Diagnostics, Loc, SourceFile};

/// An inventory being read.
pub struct Builder {
    file: Arc<SourceFile>,
    format: InventoryFormat,
    order: GroupOrder,
    pub defaults: ConnectionDecl,
    /// The environment's change policy (sluice YAML's `policy:`).
    pub policy: Option<crate::policy::Policy>,
    /// Where `sluice apply` writes its Prometheus metrics (sluice YAML's `metrics_file:`).
    pub metrics_file: Option<String>,
    /// The environment the inventory names (sluice YAML's `environment:`).
    pub environment: Option<String>,
    /// `host_lease:` under sluice YAML's `defaults` (a plan's own `host_lease` wins).
    pub host_lease: Option<bool>,
    pub hosts: Vec<HostDecl>,
    pub groups: Vec<GroupDecl>,
    host_index: HashMap<String, usize>,
    group_index: HashMap<String, usize>,
    /// Each group's parents, as added.
    parents: Vec<Vec<usize>>,
    /// (group, host) pairs already listed.
    listed: HashSet<(usize, usize)>,
}

/// Which variable layer a value goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Set in the inventory itself.
    Inventory,
    /// Read from a `group_vars/` or `host_vars/` file.
    File,
}

impl Builder {
    pub fn new(file: &Arc<SourceFile>, format: InventoryFormat, order: GroupOrder) -> Builder {
        let mut b = Builder {
            file: Arc::clone(file),
            format,
            order,
            defaults: ConnectionDecl::default(),
            policy: None,
            metrics_file: None,
            environment: None,
            host_lease: None,
            hosts: Vec::new(),
            groups: Vec::new(),
            host_index: HashMap::new(),
            group_index: HashMap::new(),
            parents: Vec::new(),
            listed: HashSet::new(),
        };
        let all = b.group(ALL, Loc::default());
        let ungrouped = b.group(UNGROUPED, Loc::default());
        b.add_child(all, ungrouped);
        b
    }

    pub fn file(&self) -> &Arc<SourceFile> {
        &self.file
    }

    pub fn group_named(&self, name: &str) -> Option<usize> {
        self.group_index.get(name).copied()
    }

    pub fn host_named(&self, name: &str) -> Option<usize> {
        self.host_index.get(name).copied()
    }

    /// The group named `name`, added (declared at `loc`) when new.
    pub fn group(&mut self, name: &str, loc: Loc) -> usize {
        if let Some(&g) = self.group_index.get(name) {
            return g;
        }
        let g = self.groups.len();
        self.group_index.insert(name.to_string(), g);
        self.groups.push(GroupDecl {
            name: name.to_string(),
            loc,
            hosts: Vec::new(),
            children: Vec::new(),
            vars: Vars::new(),
            file_vars: Vars::new(),
            origins: BTreeMap::new(),
            priority: 1,
            depth: 0,
        });
        self.parents.push(Vec::new());
        g
    }

    /// The host named `name`, added (first seen at `loc`) when new.
    pub fn host(&mut self, name: &str, loc: Loc) -> usize {
        if let Some(&h) = self.host_index.get(name) {
            return h;
        }
        let h = self.hosts.len();
        self.host_index.insert(name.to_string(), h);
        self.hosts.push(HostDecl {
            name: name.to_string(),
            loc,
            connection: ConnectionDecl::default(),
            vars: Vars::new(),
            file_vars: Vars::new(),
            origins: BTreeMap::new(),
        });
        h
    }

    /// Lists host `h` in group `g` (once).
    pub fn add_host_to(&mut self, g: usize, h: usize) {
        // A set, not a scan of the group: a group of 100,000 hosts would be quadratic.
        if self.listed.insert((g, h)) {
            self.groups[g].hosts.push(h);
        }
    }

    /// Makes `child` a child of `parent` (once). Cycles are reported by [`Builder::finish`].
    pub fn add_child(&mut self, parent: usize, child: usize) {
        if !self.groups[parent].children.contains(&child) {
            self.groups[parent].children.push(child);
            self.parents[child].push(parent);
        }
    }

    pub fn set_group_var(
        &mut self,
        g: usize,
        key: String,
        value: serde_json::Value,
        layer: Layer,
        origin: Option<Origin>,
    ) {
        let group = &mut self.groups[g];
        if let Some(o) = origin {
            group.origins.insert(key.clone(), o);
        }
        match layer {
            Layer::Inventory => group.vars.insert(key, value),
            Layer::File => group.file_vars.insert(key, value),
        };
    }

    pub fn set_host_var(
        &mut self,
        h: usize,
        key: String,
        value: serde_json::Value,
        layer: Layer,
        origin: Option<Origin>,
    ) {
        let host = &mut self.hosts[h];
        // A file value wins over an inventory value whatever the order they are read in, and
        // its origin with it.
        let keep_origin = layer == Layer::File || !host.file_vars.contains_key(&key);
        if let (Some(o), true) = (origin, keep_origin) {
            host.origins.insert(key.clone(), o);
        }
        match layer {
            Layer::Inventory => host.vars.insert(key, value),
            Layer::File => host.file_vars.insert(key, value),
        };
    }

    /// Applies the shared rules (module doc) and computes membership both ways.
    pub fn finish(mut self, diags: &mut Diagnostics) -> Inventory {
        let all = self.group(ALL, Loc::default());
        let ungrouped = self.group(UNGROUPED, Loc::default());
        for g in 0..self.groups.len() {
            if g != all && self.parents[g].is_empty() {
                self.add_child(all, g);
            }
        }
        let mut in_a_group = vec![false; self.hosts.len()];
        for (g, group) in self.groups.iter().enumerate() {
            if g != ungrouped && g != all {
                for &h in &group.hosts {
                    in_a_group[h] = true;
                }
            }
        }
        self.groups[ungrouped].hosts.retain(|&h| !in_a_group[h]);
        let lonely: Vec<usize> = (0..self.hosts.len()).filter(|&h| !in_a_group[h]).collect();
        for h in lonely {
            self.add_host_to(ungrouped, h);
        }
        let n = self.groups.len();
        let (depth, acyclic) = self.depths(diags);
        for (g, d) in depth.iter().enumerate() {
            self.groups[g].depth = *d;
        }
        let mut order: Vec<usize> = (0..n).collect();
        match self.order {
            GroupOrder::Declaration => order.sort_by_key(|&g| (depth[g], g)),
            GroupOrder::PriorityThenName => order.sort_by(|&a, &b| {
                let (ga, gb) = (&self.groups[a], &self.groups[b]);
                (depth[a], ga.priority, &ga.name).cmp(&(depth[b], gb.priority, &gb.name))
            }),
        }
        let group_hosts: Vec<Vec<usize>> = if acyclic {
            (0..n).map(|g| self.members(g)).collect()
        } else {
            vec![Vec::new(); n]
        };
        let mut host_groups = vec![Vec::new(); self.hosts.len()];
        for g in order {
            for &h in &group_hosts[g] {
                host_groups[h].push(g);
            }
        }
        Inventory {
            file: self.file,
            format: self.format,
            policy: self.policy,
            metrics_file: self.metrics_file,
            environment: self.environment,
            host_lease: self.host_lease,
            defaults: self.defaults,
            hosts: self.hosts,
            groups: self.groups,
            host_index: self.host_index,
            group_index: self.group_index,
            host_groups,
            group_hosts,
        }
    }

    /// Each group's depth below `all`, and whether the children are free of cycles (a cycle is
    /// reported; depths are then 0).
    fn depths(&self, diags: &mut Diagnostics) -> (Vec<usize>, bool) {
        let n = self.groups.len();
        let Some(order) = crate::graph::stable_order(&self.parents) else {
            let children: Vec<Vec<usize>> =
                self.groups.iter().map(|g| g.children.clone()).collect();
            if let Some(cycle) = crate::graph::find_cycle(&children) {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&g| self.groups[g].name.as_str())
                    .collect();
                diags.push(
                    Diagnostic::error(format!(
                        "group children form a cycle: {}",
                        names.join(" -> ")
                    ))
                    .at(&self.file, self.groups[cycle[0]].loc),
                );
            }
            return (vec![0; n], false);
        };
        let mut depth = vec![0usize; n];
        for g in order {
            for &p in &self.parents[g] {
                depth[g] = depth[g].max(depth[p] + 1);
            }
        }
        (depth, true)
    }

    /// Hosts of group `g` and its descendants, in inventory order, each once.
    fn members(&self, g: usize) -> Vec<usize> {
        let mut seen_group = vec![false; self.groups.len()];
        let mut hosts = vec![false; self.hosts.len()];
        let mut stack = vec![g];
        while let Some(gi) = stack.pop() {
            if std::mem::replace(&mut seen_group[gi], true) {
                continue;
            }
            for &h in &self.groups[gi].hosts {
                hosts[h] = true;
            }
            stack.extend(self.groups[gi].children.iter().copied());
        }
        hosts
            .iter()
            .enumerate()
            .filter(|(_, in_group)| **in_group)
            .map(|(i, _)| i)
            .collect()
    }
}
