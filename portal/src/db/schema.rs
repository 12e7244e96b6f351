//! Diesel table definitions, kept by hand in step with `migrations/` (the migration test in
//! `tests/it/migrations.rs` checks that every table and column named here exists after `up`).

diesel::table! {
    users (id) {
        id -> Int8,
        email -> Text,
        password_hash -> Text,
        display_name -> Text,
        student_number -> Nullable<Text>,
        language -> Text,
        role -> Text,
        email_verified_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    email_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        purpose -> Text,
        token_hash -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        token_hash -> Text,
        token_prefix -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    outbound_mail (id) {
        id -> Int8,
        to_address -> Text,
        subject -> Text,
        sealed_body -> Nullable<Bytea>,
        created_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
        sent_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
    }
}

diesel::joinable!(email_tokens -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, email_tokens, api_tokens, outbound_mail);

diesel::table! {
    projects (id) {
        id -> Int8,
        name -> Text,
        owner_id -> Int8,
        template -> Text,
        live_revision_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        min_instances -> Nullable<Int4>,
        max_instances -> Nullable<Int4>,
        idle_secs -> Nullable<Int4>,
        freeze_after_secs -> Nullable<Int4>,
        target_concurrency -> Nullable<Int4>,
        visibility -> Text,
        group_id -> Nullable<Int8>,
    }
}

diesel::table! {
    project_env (project_id, name) {
        project_id -> Int8,
        name -> Text,
        value -> Nullable<Text>,
        secret -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sealed_secrets (path) {
        path -> Text,
        sealed -> Bytea,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    revisions (id) {
        id -> Int8,
        project_id -> Int8,
        number -> Int4,
        artifact_id -> Text,
        template -> Text,
        plan -> Nullable<Jsonb>,
        status -> Text,
        error -> Nullable<Text>,
        source -> Text,
        commit_sha -> Nullable<Text>,
        commit_message -> Nullable<Text>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        build_started_at -> Nullable<Timestamptz>,
        build_finished_at -> Nullable<Timestamptz>,
        locked_until -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(projects -> users (owner_id));
diesel::joinable!(project_env -> projects (project_id));
diesel::joinable!(revisions -> projects (project_id));
diesel::allow_tables_to_appear_in_same_query!(projects, users, project_env, revisions, sealed_secrets);

diesel::table! {
    groups (id) {
        id -> Int8,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> Int8,
        user_id -> Int8,
        role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    group_invitations (id) {
        id -> Int8,
        group_id -> Int8,
        email -> Text,
        role -> Text,
        invited_by -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    quotas (id) {
        id -> Int8,
        user_id -> Nullable<Int8>,
        group_id -> Nullable<Int8>,
        max_projects -> Nullable<Int4>,
        max_instances -> Nullable<Int4>,
        max_memory_mb -> Nullable<Int4>,
        max_builds_per_hour -> Nullable<Int4>,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::joinable!(group_invitations -> groups (group_id));
diesel::joinable!(projects -> groups (group_id));
diesel::allow_tables_to_appear_in_same_query!(groups, group_members, group_invitations, quotas, users);
diesel::allow_tables_to_appear_in_same_query!(groups, projects);
diesel::allow_tables_to_appear_in_same_query!(group_members, projects);

diesel::table! {
    audit_log (id) {
        id -> Int8,
        at -> Timestamptz,
        actor_id -> Nullable<Int8>,
        actor_email -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        action -> Text,
        target_kind -> Nullable<Text>,
        target_id -> Nullable<Text>,
        details -> Jsonb,
    }
}

diesel::table! {
    custom_domains (id) {
        id -> Int8,
        project_id -> Int8,
        domain -> Text,
        proof_token -> Text,
        status -> Text,
        verified_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        cert_chain_pem -> Nullable<Text>,
        cert_key_sealed -> Nullable<Bytea>,
        cert_not_before -> Nullable<Timestamptz>,
        cert_not_after -> Nullable<Timestamptz>,
        n_failures -> Int4,
        retry_after -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    courses (id) {
        id -> Int8,
        code -> Text,
        title -> Text,
        term -> Text,
        section -> Text,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    metric_samples (resolution_secs, series, metric, at) {
        resolution_secs -> Int4,
        series -> Text,
        metric -> Text,
        at -> Timestamptz,
        value -> Float8,
    }
}

diesel::table! {
    alert_incidents (id) {
        id -> Int8,
        key -> Text,
        opened_at -> Timestamptz,
        cleared_at -> Nullable<Timestamptz>,
        reason -> Text,
    }
}

diesel::table! {
    acme_accounts (directory_url) {
        directory_url -> Text,
        credentials_sealed -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    course_staff (course_id, user_id) {
        course_id -> Int8,
        user_id -> Int8,
        role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(custom_domains -> projects (project_id));
diesel::allow_tables_to_appear_in_same_query!(custom_domains, projects);

diesel::table! {
    enrolments (course_id, user_id) {
        course_id -> Int8,
        user_id -> Int8,
        roster_name -> Text,
        student_number -> Text,
        section -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    git_sources (project_id) {
        project_id -> Int8,
        repo_url -> Text,
        branch -> Text,
        has_token -> Bool,
        last_sha -> Nullable<Text>,
        last_checked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    course_invitations (id) {
        id -> Int8,
        course_id -> Int8,
        email -> Text,
        roster_name -> Text,
        student_number -> Text,
        section -> Text,
        invited_by -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    assignments (id) {
        id -> Int8,
        course_id -> Int8,
        title -> Text,
        description -> Text,
        due_at -> Timestamptz,
        cutoff_at -> Nullable<Timestamptz>,
        kind -> Text,
        template -> Nullable<Text>,
        visibility -> Text,
        idle_secs -> Nullable<Int4>,
        max_instances -> Nullable<Int4>,
        rubric -> Jsonb,
        grades_released_at -> Nullable<Timestamptz>,
        deadline_swept_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    submissions (id) {
        id -> Int8,
        assignment_id -> Int8,
        submitter_key -> Text,
        user_id -> Nullable<Int8>,
        group_id -> Nullable<Int8>,
        project_id -> Nullable<Int8>,
        project_name -> Text,
        app_name -> Text,
        revision_id -> Nullable<Int8>,
        revision_number -> Int4,
        artifact_id -> Text,
        template -> Text,
        plan -> Jsonb,
        sealed_env -> Bytea,
        snapshot_dir -> Text,
        run_uid -> Int4,
        pin_number -> Int4,
        pinned_reason -> Text,
        pinned_at -> Timestamptz,
        submitted_at -> Timestamptz,
        late_secs -> Int8,
        scores -> Nullable<Jsonb>,
        grade -> Nullable<Float8>,
        feedback -> Text,
        graded_by -> Nullable<Int8>,
        graded_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(course_staff -> courses (course_id));
diesel::joinable!(course_staff -> users (user_id));
diesel::joinable!(enrolments -> courses (course_id));
diesel::joinable!(enrolments -> users (user_id));
diesel::joinable!(course_invitations -> courses (course_id));
diesel::joinable!(assignments -> courses (course_id));
diesel::joinable!(submissions -> assignments (assignment_id));
diesel::allow_tables_to_appear_in_same_query!(courses, course_staff, enrolments, course_invitations, assignments, submissions, users);
diesel::allow_tables_to_appear_in_same_query!(submissions, projects);

diesel::table! {
    webhook_deliveries (project_id, delivery_id) {
        project_id -> Int8,
        delivery_id -> Text,
        received_at -> Timestamptz,
    }
}

diesel::joinable!(git_sources -> projects (project_id));
diesel::joinable!(webhook_deliveries -> projects (project_id));
diesel::allow_tables_to_appear_in_same_query!(git_sources, projects);
