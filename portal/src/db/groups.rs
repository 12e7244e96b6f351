//! Queries on `groups`, `group_members` and `group_invitations`.

use diesel::prelude::*;

use super::models::{Group, GroupInvitation, GroupMember, Project, User};
use super::schema::{group_invitations, group_members, groups, projects, users};
use super::DbError;

/// Creates a group with `owner_id` as its first owner, in one transaction.
pub fn insert(conn: &mut PgConnection, name: &str, owner_id: i64) -> Result<Group, DbError> {
    conn.transaction(|conn| {
        let group: Group =
            diesel::insert_into(groups::table).values(groups::name.eq(name)).returning(Group::as_returning()).get_result(conn)?;
        diesel::insert_into(group_members::table)
            .values((group_members::group_id.eq(group.id), group_members::user_id.eq(owner_id), group_members::role.eq("owner")))
            .execute(conn)?;
        Ok(group)
    })
}

pub fn find_by_name(conn: &mut PgConnection, name: &str) -> Result<Option<Group>, DbError> {
    Ok(groups::table.filter(groups::name.eq(name)).select(Group::as_select()).first(conn).optional()?)
}

pub fn find_by_id(conn: &mut PgConnection, group_id: i64) -> Result<Option<Group>, DbError> {
    Ok(groups::table.find(group_id).select(Group::as_select()).first(conn).optional()?)
}

pub fn role_of(conn: &mut PgConnection, group_id: i64, user_id: i64) -> Result<Option<String>, DbError> {
    Ok(group_members::table.find((group_id, user_id)).select(group_members::role).first(conn).optional()?)
}

/// Members with their accounts, owners first.
pub fn members(conn: &mut PgConnection, group_id: i64) -> Result<Vec<(GroupMember, User)>, DbError> {
    let mut rows: Vec<(GroupMember, User)> = group_members::table
        .inner_join(users::table)
        .filter(group_members::group_id.eq(group_id))
        .select((GroupMember::as_select(), User::as_select()))
        .load(conn)?;
    let rank = |role: &str| match role {
        "owner" => 0,
        "maintainer" => 1,
        _ => 2,
    };
    rows.sort_by(|a, b| rank(&a.0.role).cmp(&rank(&b.0.role)).then_with(|| a.1.email.cmp(&b.1.email)));
    Ok(rows)
}

/// User ids of the group's members, optionally only those with `role`.
pub fn member_ids(conn: &mut PgConnection, group_id: i64, role: Option<&str>) -> Result<Vec<i64>, DbError> {
    let mut query = group_members::table.filter(group_members::group_id.eq(group_id)).select(group_members::user_id).into_boxed();
    if let Some(role) = role {
        query = query.filter(group_members::role.eq(role.to_owned()));
    }
    Ok(query.load(conn)?)
}

pub fn upsert_member(conn: &mut PgConnection, group_id: i64, user_id: i64, role: &str) -> Result<(), DbError> {
    diesel::insert_into(group_members::table)
        .values((group_members::group_id.eq(group_id), group_members::user_id.eq(user_id), group_members::role.eq(role)))
        .on_conflict((group_members::group_id, group_members::user_id))
        .do_update()
        .set(group_members::role.eq(role))
        .execute(conn)?;
    Ok(())
}

pub fn remove_member(conn: &mut PgConnection, group_id: i64, user_id: i64) -> Result<bool, DbError> {
    Ok(diesel::delete(group_members::table.find((group_id, user_id))).execute(conn)? == 1)
}

pub fn count_owners(conn: &mut PgConnection, group_id: i64) -> Result<i64, DbError> {
    Ok(group_members::table
        .filter(group_members::group_id.eq(group_id))
        .filter(group_members::role.eq("owner"))
        .count()
        .get_result(conn)?)
}

/// Groups `user_id` belongs to, with the role there.
pub fn for_user(conn: &mut PgConnection, user_id: i64) -> Result<Vec<(Group, String)>, DbError> {
    Ok(group_members::table
        .inner_join(groups::table)
        .filter(group_members::user_id.eq(user_id))
        .order(groups::name.asc())
        .select((Group::as_select(), group_members::role))
        .load(conn)?)
}

pub fn projects(conn: &mut PgConnection, group_id: i64) -> Result<Vec<Project>, DbError> {
    Ok(projects::table.filter(projects::group_id.eq(group_id)).order(projects::name.asc()).select(Project::as_select()).load(conn)?)
}

pub fn invite(conn: &mut PgConnection, group_id: i64, email: &str, role: &str, invited_by: i64) -> Result<GroupInvitation, DbError> {
    Ok(diesel::insert_into(group_invitations::table)
        .values((
            group_invitations::group_id.eq(group_id),
            group_invitations::email.eq(email),
            group_invitations::role.eq(role),
            group_invitations::invited_by.eq(invited_by),
        ))
        .on_conflict((group_invitations::group_id, group_invitations::email))
        .do_update()
        .set(group_invitations::role.eq(role))
        .returning(GroupInvitation::as_returning())
        .get_result(conn)?)
}

pub fn invitations(conn: &mut PgConnection, group_id: i64) -> Result<Vec<GroupInvitation>, DbError> {
    Ok(group_invitations::table
        .filter(group_invitations::group_id.eq(group_id))
        .order(group_invitations::email.asc())
        .select(GroupInvitation::as_select())
        .load(conn)?)
}

pub fn delete_invitation(conn: &mut PgConnection, group_id: i64, email: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(group_invitations::table.filter(group_invitations::group_id.eq(group_id)).filter(group_invitations::email.eq(email)))
        .execute(conn)?
        == 1)
}

/// Turns every invitation for `email` into a membership of `user_id`, in one transaction; returns
/// the groups joined. A user who is already a member keeps the role they have.
pub fn accept_invitations(conn: &mut PgConnection, email: &str, user_id: i64) -> Result<Vec<i64>, DbError> {
    conn.transaction(|conn| {
        let taken: Vec<GroupInvitation> = diesel::delete(group_invitations::table.filter(group_invitations::email.eq(email)))
            .returning(GroupInvitation::as_returning())
            .get_results(conn)?;
        for invitation in &taken {
            diesel::insert_into(group_members::table)
                .values((
                    group_members::group_id.eq(invitation.group_id),
                    group_members::user_id.eq(user_id),
                    group_members::role.eq(&invitation.role),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
        }
        Ok(taken.into_iter().map(|i| i.group_id).collect())
    })
}
