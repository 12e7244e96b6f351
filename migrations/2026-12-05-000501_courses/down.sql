DROP TABLE submissions;
DROP TABLE assignments;
DROP TABLE course_invitations;
DROP TABLE enrolments;
DROP TABLE course_staff;
DROP TABLE courses;
