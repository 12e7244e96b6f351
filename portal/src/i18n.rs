//! Korean and English strings for pages and mail, read from `portal/locales/*.toml` (compiled
//! in). Keys are dotted (`login.title`); `fill` replaces `{name}` placeholders. A test checks
//! that both languages define the same keys and the same placeholders.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::domain::Language;

type Table = HashMap<String, String>;

fn flatten(prefix: &str, table: &toml::Table, out: &mut Table) {
    for (key, value) in table {
        let full = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&full, inner, out),
            toml::Value::String(text) => {
                out.insert(full, text.clone());
            }
            other => panic!("locale key {full} must be a string, found {other:?}"),
        }
    }
}

fn load(source: &str) -> Table {
    let table: toml::Table = source.parse().expect("locale files are valid TOML (checked by tests)");
    let mut out = Table::new();
    flatten("", &table, &mut out);
    out
}

fn table(language: Language) -> &'static Table {
    static EN: OnceLock<Table> = OnceLock::new();
    static KO: OnceLock<Table> = OnceLock::new();
    match language {
        Language::En => EN.get_or_init(|| load(include_str!("../locales/en.toml"))),
        Language::Ko => KO.get_or_init(|| load(include_str!("../locales/ko.toml"))),
    }
}

/// A translator for one language.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub language: Language,
}

impl Tr {
    pub fn new(language: Language) -> Self {
        Self { language }
    }

    /// The string for `key`; a missing key shows as the key itself, so it is noticed, never hidden.
    pub fn t<'a>(&self, key: &'a str) -> &'a str {
        match table(self.language).get(key) {
            Some(text) => text.as_str(),
            None => key,
        }
    }

    pub fn fill(&self, key: &str, vars: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in vars {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn placeholders(text: &str) -> BTreeSet<String> {
        text.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned())).collect()
    }

    #[test]
    fn both_languages_define_the_same_keys_and_placeholders() {
        let en = table(Language::En);
        let ko = table(Language::Ko);
        let en_keys: BTreeSet<_> = en.keys().collect();
        let ko_keys: BTreeSet<_> = ko.keys().collect();
        assert_eq!(en_keys.difference(&ko_keys).collect::<Vec<_>>(), Vec::<&&String>::new(), "keys missing in ko.toml");
        assert_eq!(ko_keys.difference(&en_keys).collect::<Vec<_>>(), Vec::<&&String>::new(), "keys missing in en.toml");
        for key in en.keys() {
            assert_eq!(placeholders(&en[key]), placeholders(&ko[key]), "placeholders differ for {key}");
        }
    }

    #[test]
    fn every_key_used_in_templates_and_code_exists() {
        let en = table(Language::En);
        let sources = [
            include_str!("../templates/base.html"),
            include_str!("../templates/home.html"),
            include_str!("../templates/signup.html"),
            include_str!("../templates/message.html"),
            include_str!("../templates/login.html"),
            include_str!("../templates/forgot.html"),
            include_str!("../templates/reset.html"),
            include_str!("../templates/resend.html"),
            include_str!("../templates/dashboard.html"),
            include_str!("../templates/profile.html"),
            include_str!("../templates/tokens.html"),
            include_str!("../templates/admin_users.html"),
            include_str!("../templates/projects.html"),
            include_str!("../templates/project.html"),
            include_str!("../templates/revision.html"),
            include_str!("../templates/logs.html"),
            include_str!("../templates/courses.html"),
            include_str!("../templates/course.html"),
            include_str!("../templates/assignment.html"),
            include_str!("../templates/grading.html"),
            include_str!("routes/pages/courses.rs"),
            include_str!("routes/pages/projects.rs"),
            include_str!("routes/pages/mod.rs"),
            include_str!("routes/pages/accounts.rs"),
            include_str!("routes/pages/profile.rs"),
            include_str!("routes/pages/admin.rs"),
        ];
        let mut missing = BTreeSet::new();
        for source in sources {
            for piece in source.split("t(\"").skip(1) {
                let key = piece.split('"').next().unwrap_or("");
                if key.contains('.') && !en.contains_key(key) {
                    missing.insert(key.to_owned());
                }
            }
        }
        assert!(missing.is_empty(), "keys used but not defined: {missing:?}");
    }

    #[test]
    fn fill_replaces_placeholders() {
        let tr = Tr::new(Language::En);
        assert!(tr.fill("mail.verify.body", &[("name", "Kim"), ("link", "L"), ("hours", "24")]).contains("Kim"));
        assert_eq!(tr.t("no.such.key"), "no.such.key");
    }
}
