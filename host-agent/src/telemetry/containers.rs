//! Container ID → (stack, service), from the compose labels.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::runtime::{
    ContainerInfo, LABEL_PROJECT, LABEL_SERVICE, LabelFilter, Runtime, RuntimeResult,
};

/// A shared, cheaply cloned directory of the engine's compose containers.
/// The agent refreshes it from the runtime (after applies, or on a slow
/// timer); the GPU sampler only reads it.
#[derive(Debug, Clone, Default)]
pub struct ContainerDirectory {
    inner: Arc<RwLock<BTreeMap<String, (String, String)>>>,
}

impl ContainerDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the directory with these containers (those without the
    /// compose project label are left out).
    pub fn replace_from(&self, containers: &[ContainerInfo]) {
        let map = containers
            .iter()
            .filter_map(|c| {
                let stack = c.labels.get(LABEL_PROJECT)?;
                let service = c.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
                Some((c.id.clone(), (stack.clone(), service)))
            })
            .collect();
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    pub fn insert(
        &self,
        container_id: impl Into<String>,
        stack: impl Into<String>,
        service: impl Into<String>,
    ) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(container_id.into(), (stack.into(), service.into()));
    }

    /// `(stack, service)` of a container.
    pub fn labels_of(&self, container_id: &str) -> Option<(String, String)> {
        if container_id.is_empty() {
            return None;
        }
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(container_id)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lists the engine's compose containers and replaces the directory.
    pub async fn refresh(&self, runtime: &dyn Runtime) -> RuntimeResult<usize> {
        let containers = runtime
            .list_containers(&LabelFilter::new().has_label(LABEL_PROJECT))
            .await?;
        self.replace_from(&containers);
        Ok(self.len())
    }
}
