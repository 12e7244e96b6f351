//! Who may do what with a project: the roles a user can hold towards it, the actions, and the one
//! table that relates them.
//!
//! A personal project has one `Owner` (its creator). A group's project takes its roles from the
//! group: the group's owners are the project's owners, maintainers and viewers likewise; the
//! creator has no special standing once the project belongs to a group. Platform admins act as
//! owners of every project.
//!
//! ```text
//!                     owner  maintainer  viewer  none
//! view                  x        x         x
//! deploy                x        x
//! change env            x        x
//! change visibility     x
//! delete                x
//! manage members        x
//! manage domains        x
//! open a shell          x
//! ```
//! Pure: no I/O. The server calls `allows` on every page and API route that touches a project
//! (`projects::get`). The unit test below checks the table; `portal/tests/it/permissions.rs` drives
//! each role through each action's real API route and checks the database afterwards.

/// A user's standing towards one project (or, for `ManageMembers`, its group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProjectRole {
    None,
    Viewer,
    Maintainer,
    Owner,
}

/// A role inside a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRole {
    Owner,
    Maintainer,
    Viewer,
}

impl GroupRole {
    pub const ALL: [GroupRole; 3] = [GroupRole::Owner, GroupRole::Maintainer, GroupRole::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupRole::Owner => "owner",
            GroupRole::Maintainer => "maintainer",
            GroupRole::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Result<GroupRole, super::ValidationError> {
        GroupRole::ALL.into_iter().find(|role| role.as_str() == text.trim()).ok_or_else(|| {
            super::ValidationError::new(
                "unknown_role",
                "role",
                format!("`{}` is not a role; choose owner, maintainer or viewer", text.trim()),
            )
            .with("value", text.trim())
        })
    }

    pub fn project_role(self) -> ProjectRole {
        match self {
            GroupRole::Owner => ProjectRole::Owner,
            GroupRole::Maintainer => ProjectRole::Maintainer,
            GroupRole::Viewer => ProjectRole::Viewer,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    View,
    Deploy,
    ChangeEnv,
    ChangeVisibility,
    Delete,
    ManageMembers,
    /// Add, verify and remove custom domains.
    ManageDomains,
    /// A shell inside a running instance of the app (the owner shell).
    OpenShell,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::View,
        Action::Deploy,
        Action::ChangeEnv,
        Action::ChangeVisibility,
        Action::Delete,
        Action::ManageMembers,
        Action::ManageDomains,
        Action::OpenShell,
    ];
}

/// The table in the module doc.
pub fn allows(role: ProjectRole, action: Action) -> bool {
    let needed = match action {
        Action::View => ProjectRole::Viewer,
        Action::Deploy | Action::ChangeEnv => ProjectRole::Maintainer,
        Action::ChangeVisibility | Action::Delete | Action::ManageMembers | Action::ManageDomains | Action::OpenShell => ProjectRole::Owner,
    };
    role >= needed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(role: ProjectRole, expected: [bool; 8]) {
        let got: Vec<bool> = Action::ALL.iter().map(|action| allows(role, *action)).collect();
        assert_eq!(got, expected, "{role:?}");
    }

    #[test]
    fn each_role_may_do_exactly_what_the_table_says() {
        //                           view   deploy env    visib. delete members domains shell
        check(ProjectRole::Owner, [true, true, true, true, true, true, true, true]);
        check(ProjectRole::Maintainer, [true, true, true, false, false, false, false, false]);
        check(ProjectRole::Viewer, [true, false, false, false, false, false, false, false]);
        check(ProjectRole::None, [false, false, false, false, false, false, false, false]);
    }

    #[test]
    fn group_roles_parse_and_map_to_project_roles() {
        assert_eq!(GroupRole::parse(" maintainer ").map(GroupRole::project_role), Ok(ProjectRole::Maintainer));
        assert_eq!(GroupRole::parse("admin").map_err(|e| e.code), Err("unknown_role"));
    }
}
