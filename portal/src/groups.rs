//! Group flows shared by the API (and later the pages): create, invite by e-mail (an invitation
//! for an address without an account waits until that address is verified), change a member's
//! role, remove, leave, transfer ownership. Every change republishes the access records of the
//! group's projects, so the gateways follow within seconds.
//!
//! Managing members needs `Action::ManageMembers` (the group's owners; admins too). A group always
//! keeps at least one owner: removing, demoting or the leaving of the last owner is refused.

use orchestrator::model::AppName;

use crate::audit::{self, Event};
use crate::db;
use crate::db::models::{Group, User};
use crate::domain::audit::{actions, Target};
use crate::domain::permissions::allows;
use crate::domain::{Action, EmailAddress, GroupRole, ProjectRole, Role, ValidationError};
use crate::error::AppError;
use crate::state::AppState;

pub async fn create(state: &AppState, user: &User, raw_name: &str) -> Result<Group, AppError> {
    // Group names follow the same rules as project names (they appear in URLs).
    let name = AppName::parse(raw_name)
        .map_err(|e| AppError::Validation(ValidationError::new(e.code(), "name", e.to_string()).with("value", raw_name.trim())))?;
    let owner_id = user.id;
    let text = name.as_str().to_owned();
    match state.db.run(move |conn| db::groups::insert(conn, &text, owner_id)).await {
        Ok(group) => {
            audit::record(&state.db, Event::new(actions::GROUP_CREATE).target(Target::group(&group.name))).await;
            Ok(group)
        }
        Err(e) if e.is_unique_violation() => {
            Err(AppError::Conflict { code: "group_name_taken", message: format!("the group `{name}` exists already") })
        }
        Err(e) => Err(e.into()),
    }
}

/// The group and the user's role there; 404 for a group the user is not in (admins see all).
pub async fn get(state: &AppState, user: &User, raw_name: &str) -> Result<(Group, ProjectRole), AppError> {
    let name = raw_name.trim().to_owned();
    let user_id = user.id;
    let (group, role) = state
        .db
        .run(move |conn| {
            let Some(group) = db::groups::find_by_name(conn, &name)? else { return Ok(None) };
            let role = db::groups::role_of(conn, group.id, user_id)?;
            Ok::<_, db::DbError>(Some((group, role)))
        })
        .await?
        .ok_or(AppError::NotFound("group"))?;
    let role = role.and_then(|r| GroupRole::parse(&r).ok()).map_or(ProjectRole::None, GroupRole::project_role);
    let role = if user.role == Role::Admin.as_str() { ProjectRole::Owner } else { role };
    if role == ProjectRole::None {
        return Err(AppError::NotFound("group"));
    }
    Ok((group, role))
}

async fn get_to_manage(state: &AppState, user: &User, raw_name: &str) -> Result<Group, AppError> {
    let (group, role) = get(state, user, raw_name).await?;
    if !allows(role, Action::ManageMembers) {
        return Err(AppError::Forbidden);
    }
    Ok(group)
}

pub async fn list(state: &AppState, user: &User) -> Result<Vec<(Group, String)>, AppError> {
    let user_id = user.id;
    Ok(state.db.run(move |conn| db::groups::for_user(conn, user_id)).await?)
}

/// What inviting did.
#[derive(Debug, serde::Serialize)]
pub struct Invited {
    pub email: String,
    pub role: &'static str,
    /// `true`: the address has an account and is a member now; `false`: it waits for sign-up.
    pub member: bool,
}

pub async fn invite(state: &AppState, actor: &User, group_name: &str, raw_email: &str, role: GroupRole) -> Result<Invited, AppError> {
    let group = get_to_manage(state, actor, group_name).await?;
    let email = EmailAddress::parse(raw_email)?;
    let (group_id, actor_id, text) = (group.id, actor.id, email.as_str().to_owned());
    let invitee = state
        .db
        .run(move |conn| {
            match db::users::find_by_email(conn, &text)? {
                Some(user) if user.email_verified_at.is_some() => {
                    // An existing member keeps their role unless it is the last owner being demoted.
                    if db::groups::role_of(conn, group_id, user.id)?.as_deref() == Some("owner")
                        && role != GroupRole::Owner
                        && db::groups::count_owners(conn, group_id)? <= 1
                    {
                        return Ok(Err(last_owner()));
                    }
                    db::groups::upsert_member(conn, group_id, user.id, role.as_str())?;
                    Ok(Ok(Some(user)))
                }
                _ => {
                    db::groups::invite(conn, group_id, &text, role.as_str(), actor_id)?;
                    Ok::<_, db::DbError>(Ok(None))
                }
            }
        })
        .await??;
    crate::access::publish_group(state, group.id).await?;
    let member = invitee.is_some();
    // The mail goes through the durable queue: a mail server that is down delays it, never loses it.
    let (path, language, name) = match &invitee {
        Some(user) => (format!("/groups/{}", group.name), user.language.clone(), user.display_name.clone()),
        None => ("/signup".to_owned(), actor.language.clone(), String::new()),
    };
    let link = state.config.public_url.join(&path).map(|url| url.to_string()).unwrap_or_else(|_| state.config.public_url.to_string());
    let kind = crate::mail::MailKind::GroupInvitation {
        group: group.name.clone(),
        role: role.as_str().to_owned(),
        inviter: actor.display_name.clone(),
        link,
        member,
    };
    let language = crate::domain::Language::parse(&language).unwrap_or_default();
    state.mail.enqueue(email.as_str(), crate::mail::compose(&kind, language, &name)).await?;
    // An existing member's role changes this way too: `member` with the new `role`.
    let details = serde_json::json!({ "email": email.as_str(), "role": role.as_str(), "member": member });
    audit::record(&state.db, Event::new(actions::GROUP_INVITE).target(Target::group(&group.name)).details(details)).await;
    Ok(Invited { email: email.as_str().to_owned(), role: role.as_str(), member })
}

fn last_owner() -> AppError {
    AppError::Conflict { code: "last_owner", message: "a group needs at least one owner; make someone else owner first".to_owned() }
}

/// Removes a member (by e-mail) or a pending invitation.
pub async fn remove(state: &AppState, actor: &User, group_name: &str, raw_email: &str) -> Result<(), AppError> {
    let group = get_to_manage(state, actor, group_name).await?;
    remove_member(state, &group, raw_email).await?;
    let details = serde_json::json!({ "email": raw_email.trim().to_ascii_lowercase() });
    audit::record(&state.db, Event::new(actions::GROUP_MEMBER_REMOVE).target(Target::group(&group.name)).details(details)).await;
    Ok(())
}

/// The user leaves the group.
pub async fn leave(state: &AppState, user: &User, group_name: &str) -> Result<(), AppError> {
    let (group, _role) = get(state, user, group_name).await?;
    remove_member(state, &group, &user.email).await?;
    audit::record(&state.db, Event::new(actions::GROUP_LEAVE).target(Target::group(&group.name))).await;
    Ok(())
}

async fn remove_member(state: &AppState, group: &Group, raw_email: &str) -> Result<(), AppError> {
    let email = raw_email.trim().to_ascii_lowercase();
    let group_id = group.id;
    state
        .db
        .run(move |conn| {
            if db::groups::delete_invitation(conn, group_id, &email)? {
                return Ok(Ok(()));
            }
            let Some(user) = db::users::find_by_email(conn, &email)? else { return Ok(Err(AppError::NotFound("member"))) };
            let role = db::groups::role_of(conn, group_id, user.id)?;
            if role.is_none() {
                return Ok(Err(AppError::NotFound("member")));
            }
            if role.as_deref() == Some("owner") && db::groups::count_owners(conn, group_id)? <= 1 {
                return Ok(Err(last_owner()));
            }
            db::groups::remove_member(conn, group_id, user.id)?;
            Ok::<_, db::DbError>(Ok(()))
        })
        .await??;
    crate::access::publish_group(state, group.id).await
}

/// Makes `raw_email` (a member) an owner and the acting owner a maintainer.
pub async fn transfer(state: &AppState, actor: &User, group_name: &str, raw_email: &str) -> Result<(), AppError> {
    let group = get_to_manage(state, actor, group_name).await?;
    let (group_id, actor_id, email) = (group.id, actor.id, raw_email.trim().to_ascii_lowercase());
    state
        .db
        .run(move |conn| {
            use diesel::Connection;
            conn.transaction(|conn| {
                let Some(user) = db::users::find_by_email(conn, &email)? else { return Ok(Err(AppError::NotFound("member"))) };
                if db::groups::role_of(conn, group_id, user.id)?.is_none() {
                    return Ok(Err(AppError::NotFound("member")));
                }
                db::groups::upsert_member(conn, group_id, user.id, "owner")?;
                if user.id != actor_id && db::groups::role_of(conn, group_id, actor_id)?.is_some() {
                    db::groups::upsert_member(conn, group_id, actor_id, "maintainer")?;
                }
                Ok::<_, db::DbError>(Ok(()))
            })
        })
        .await??;
    crate::access::publish_group(state, group.id).await?;
    let details = serde_json::json!({ "new_owner": raw_email.trim().to_ascii_lowercase() });
    audit::record(&state.db, Event::new(actions::GROUP_TRANSFER).target(Target::group(&group.name)).details(details)).await;
    Ok(())
}

/// A group as its page and the API show it.
#[derive(Debug)]
pub struct Details {
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The viewer's standing (admins: owner).
    pub your_role: ProjectRole,
    /// (e-mail, display name, role) of each member.
    pub members: Vec<(String, String, String)>,
    pub invitations: Vec<db::models::GroupInvitation>,
    /// (name, visibility) of each project.
    pub projects: Vec<(String, String)>,
}

impl Details {
    /// May the viewer invite, remove and transfer?
    pub fn can_manage(&self) -> bool {
        allows(self.your_role, Action::ManageMembers)
    }

    pub fn your_role_name(&self) -> String {
        format!("{:?}", self.your_role).to_ascii_lowercase()
    }
}

/// Members, pending invitations and projects; 404 for someone outside the group.
pub async fn details(state: &AppState, user: &User, group_name: &str) -> Result<Details, AppError> {
    let (group, role) = get(state, user, group_name).await?;
    let group_id = group.id;
    let (members, invitations, projects) = state
        .db
        .run(move |conn| {
            Ok::<_, db::DbError>((
                db::groups::members(conn, group_id)?,
                db::groups::invitations(conn, group_id)?,
                db::groups::projects(conn, group_id)?,
            ))
        })
        .await?;
    Ok(Details {
        name: group.name,
        created_at: group.created_at,
        your_role: role,
        members: members.into_iter().map(|(m, u)| (u.email, u.display_name, m.role)).collect(),
        invitations,
        projects: projects.into_iter().map(|p| (p.name, p.visibility)).collect(),
    })
}

/// Members, pending invitations and projects, as the API shows them.
pub async fn view(state: &AppState, user: &User, group_name: &str) -> Result<serde_json::Value, AppError> {
    let details = details(state, user, group_name).await?;
    Ok(serde_json::json!({
        "name": details.name,
        "created_at": details.created_at,
        "your_role": details.your_role_name(),
        "members": details.members.iter().map(|(email, display_name, role)| serde_json::json!({"email": email, "display_name": display_name, "role": role})).collect::<Vec<_>>(),
        "invitations": details.invitations,
        "projects": details.projects.iter().map(|(name, visibility)| serde_json::json!({"name": name, "visibility": visibility})).collect::<Vec<_>>(),
    }))
}

/// At e-mail verification: turns the address's pending invitations into memberships.
pub async fn accept_invitations(state: &AppState, user: &User) -> Result<(), AppError> {
    let (email, user_id) = (user.email.clone(), user.id);
    let groups = state.db.run(move |conn| db::groups::accept_invitations(conn, &email, user_id)).await?;
    for group_id in groups {
        crate::access::publish_group(state, group_id).await?;
    }
    Ok(())
}
