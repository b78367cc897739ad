//! `adapter: files` — a restored tree of documents or configuration. Its checks are the
//! store-independent ones (`files`, `config_parse`, `command`).

use drillbook_runbooks::{Check, CheckKind, FilesOptions};

use crate::{AdapterError, CheckOutcome, DrillCx, RestoreOutcome, Scratch, Teardown, Unpacked, inside};

pub struct Files {
    options: FilesOptions,
}

impl Files {
    pub fn new(options: FilesOptions) -> Self {
        Files { options }
    }
}

#[async_trait::async_trait]
impl crate::Adapter for Files {
    fn kind(&self) -> &'static str {
        "files"
    }

    fn supports(&self, _check: &CheckKind) -> bool {
        false
    }

    fn explain_restore(&self, backup: &str) -> Vec<String> {
        let root = self.options.root.as_deref().map(|r| format!(" and use its `{r}` folder")).unwrap_or_default();
        vec![format!("Unpack {backup} into an empty scratch folder{root}.")]
    }

    fn explain_check(&self, check: &Check) -> String {
        format!("`{}` check", check.check.name())
    }

    async fn provision(&self, _cx: &DrillCx, backup: &Unpacked) -> Result<Scratch, AdapterError> {
        let dir = match &self.options.root {
            Some(r) => inside(&backup.root, r)
                .ok_or_else(|| AdapterError::Provision(format!("root `{r}` escapes the restored tree")))?,
            None => backup.root.clone(),
        };
        if !dir.is_dir() {
            return Err(AdapterError::Provision(format!(
                "root `{}` is not a folder of the backup",
                self.options.root.as_deref().unwrap_or(".")
            )));
        }
        Ok(Scratch { url: format!("file://{}", dir.display()), dir, created: Vec::new(), state: Box::new(()) })
    }

    async fn restore(
        &self,
        _cx: &DrillCx,
        scratch: &mut Scratch,
        _backup: &Unpacked,
    ) -> Result<RestoreOutcome, AdapterError> {
        let files = crate::checks::files::walk(&scratch.dir)
            .map_err(|e| AdapterError::io("cannot list the restored tree", e))?;
        Ok(RestoreOutcome::new(format!("{} files in the restored tree", files.len())))
    }

    async fn check(&self, _cx: &DrillCx, _scratch: &Scratch, check: &CheckKind) -> Result<CheckOutcome, AdapterError> {
        Err(AdapterError::Unsupported(format!("files cannot evaluate `{}`", check.name())))
    }

    async fn teardown(&self, _cx: &DrillCx, _scratch: Scratch, _how: Teardown) -> Result<(), AdapterError> {
        Ok(())
    }
}
