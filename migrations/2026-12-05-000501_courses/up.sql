-- Courses: staff (professors and TAs), students enrolled from roster files (or invited by e-mail
-- until they sign up), assignments, submissions pinned as snapshots, and their grades.

CREATE TABLE courses (
    id          BIGSERIAL PRIMARY KEY,
    code        TEXT NOT NULL CHECK (length(code) BETWEEN 1 AND 40),
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    term        TEXT NOT NULL CHECK (length(term) BETWEEN 1 AND 40),
    section     TEXT NOT NULL DEFAULT '' CHECK (length(section) <= 40),
    created_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (code, term, section)
);

CREATE TABLE course_staff (
    course_id   BIGINT NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('professor', 'ta')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX course_staff_user ON course_staff (user_id);

-- What the roster said about a student (name, number, section), kept for the grade export.
CREATE TABLE enrolments (
    course_id       BIGINT NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    roster_name     TEXT NOT NULL DEFAULT '',
    student_number  TEXT NOT NULL DEFAULT '',
    section         TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX enrolments_user ON enrolments (user_id);

-- A roster row without an account: it becomes an enrolment when the address is verified.
CREATE TABLE course_invitations (
    id              BIGSERIAL PRIMARY KEY,
    course_id       BIGINT NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    email           TEXT NOT NULL CHECK (email = lower(email) AND position('@' in email) > 1),
    roster_name     TEXT NOT NULL DEFAULT '',
    student_number  TEXT NOT NULL DEFAULT '',
    section         TEXT NOT NULL DEFAULT '',
    invited_by      BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (course_id, email)
);
CREATE INDEX course_invitations_email ON course_invitations (email);

CREATE TABLE assignments (
    id                  BIGSERIAL PRIMARY KEY,
    course_id           BIGINT NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    title               TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description         TEXT NOT NULL DEFAULT '',
    due_at              TIMESTAMPTZ NOT NULL,
    cutoff_at           TIMESTAMPTZ CHECK (cutoff_at IS NULL OR cutoff_at >= due_at),
    kind                TEXT NOT NULL DEFAULT 'individual' CHECK (kind IN ('individual', 'group')),
    template            TEXT,
    visibility          TEXT NOT NULL DEFAULT 'staff' CHECK (visibility IN ('staff', 'class', 'public')),
    idle_secs           INTEGER CHECK (idle_secs > 0),
    max_instances       INTEGER CHECK (max_instances > 0),
    rubric              JSONB NOT NULL DEFAULT '[{"name": "Grade", "points": 100}]',
    grades_released_at  TIMESTAMPTZ,
    -- Set by the sweep once it has pinned the snapshots and opened access at the deadline.
    deadline_swept_at   TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX assignments_course ON assignments (course_id);
CREATE INDEX assignments_unswept ON assignments (due_at) WHERE deadline_swept_at IS NULL;

-- One submission per student (individual) or group (group assignment) and assignment; it keeps
-- a copy of everything needed to serve the pinned revision (`app_name`) after the project is
-- redeployed or deleted: artifact, template, plan (start command), and the environment, sealed.
CREATE TABLE submissions (
    id               BIGSERIAL PRIMARY KEY,
    assignment_id    BIGINT NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    submitter_key    TEXT NOT NULL CHECK (submitter_key ~ '^[ug][0-9]+$'),
    user_id          BIGINT REFERENCES users (id) ON DELETE SET NULL,
    group_id         BIGINT REFERENCES groups (id) ON DELETE SET NULL,
    project_id       BIGINT REFERENCES projects (id) ON DELETE SET NULL,
    project_name     TEXT NOT NULL,
    app_name         TEXT NOT NULL UNIQUE,
    revision_id      BIGINT REFERENCES revisions (id) ON DELETE SET NULL,
    revision_number  INTEGER NOT NULL,
    artifact_id      TEXT NOT NULL CHECK (artifact_id ~ '^[0-9a-f]{64}$'),
    template         TEXT NOT NULL,
    plan             JSONB NOT NULL,
    sealed_env       BYTEA NOT NULL,
    -- The copy of the built revision (`app/`) and of its data volume (`data/`), relative to the
    -- data dir, and the sandbox uid that owns them.
    snapshot_dir     TEXT NOT NULL,
    run_uid          INTEGER NOT NULL,
    pin_number       INTEGER NOT NULL DEFAULT 1,
    pinned_reason    TEXT NOT NULL DEFAULT 'submit' CHECK (pinned_reason IN ('submit', 'deadline')),
    pinned_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    submitted_at     TIMESTAMPTZ NOT NULL,
    late_secs        BIGINT NOT NULL DEFAULT 0 CHECK (late_secs >= 0),
    scores           JSONB,
    grade            DOUBLE PRECISION,
    feedback         TEXT NOT NULL DEFAULT '',
    graded_by        BIGINT REFERENCES users (id) ON DELETE SET NULL,
    graded_at        TIMESTAMPTZ,
    UNIQUE (assignment_id, submitter_key)
);
CREATE INDEX submissions_project ON submissions (project_id);
