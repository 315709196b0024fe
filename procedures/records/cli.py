"""The record's command line: `ionto subject|course|session|audit|export|db`, and `--course`
for `ionto run` (the session is written before anything is energized, refused ones too).

Exit codes follow `ionto run`: 0 done; 2 invalid input or an unknown ID (the message names the
field and its range); 3 refused by a course rule, or `audit verify` found a problem; 4 the
records database cannot be used (unreachable, or an old schema); 1 internal error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli_shared import EXIT_INSTRUMENT, EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, EXIT_SAFETY
from ..cli_shared import Formatter as _Formatter

if TYPE_CHECKING:
    from .store import Store

EXIT_REFUSED, EXIT_UNAVAILABLE = EXIT_SAFETY, EXIT_INSTRUMENT

Handler = Callable[[argparse.Namespace], int]


# -- registration ------------------------------------------------------------------------


def register(commands: Any, run_parser: argparse.ArgumentParser | None = None) -> None:
    """Add the record's verbs to `ionto`, and `--course` (with its options) to `ionto run`."""
    _subject_commands(commands)
    _course_commands(commands)
    _session_commands(commands)
    _audit_commands(commands)
    _export_command(commands)
    _db_commands(commands)
    if run_parser is not None:
        add_run_arguments(run_parser)
    gui = getattr(commands, "choices", {}).get("gui")
    if gui is not None:
        gui.add_argument("--db", metavar="URL", help="records database of the Course panel "
                                                     "(default: $IONTO_DB, else the user data dir)")
        handler = gui.get_default("handler")
        if handler is not None:
            gui.set_defaults(handler=lambda args: _with_db_env(args, handler))


def _with_db_env(args: argparse.Namespace, handler: Handler) -> int:
    """`ionto gui --db URL`: the Course panel opens that database (through IONTO_DB)."""
    import os

    from .store import ENV_VAR

    if getattr(args, "db", None):
        os.environ[ENV_VAR] = args.db
    return handler(args)


def _common(parser: argparse.ArgumentParser, who: bool = False) -> None:
    parser.add_argument("--db", metavar="URL",
                        help="records database: postgresql://user@host/db or a SQLite path "
                             "(default: $IONTO_DB, else a SQLite file in the user data dir)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    if who:
        parser.add_argument("--operator", metavar="NAME",
                            help="who records this (default: the login name)")


def _verb(group: Any, name: str, handler: Handler, help_text: str,
          who: bool = False, epilog: str = "") -> argparse.ArgumentParser:
    parser = group.add_parser(name, formatter_class=_Formatter, help=help_text,
                              description=help_text[:1].upper() + help_text[1:] + ".",
                              epilog=epilog or None)
    _common(parser, who)
    parser.set_defaults(handler=_guarded(handler))
    return parser


def _subject_commands(commands: Any) -> None:
    parser = commands.add_parser("subject", formatter_class=_Formatter,
                                 help="subjects of the record (pseudonymous codes)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = _verb(verbs, "add", cmd_subject_add, "add a subject under a pseudonymous code",
                who=True, epilog="example:\n  ionto subject add S014 --note 'CRPS left hand'")
    add.add_argument("code", metavar="CODE", help="pseudonymous ID (no names)")
    add.add_argument("--note", default="", help="free note")
    _verb(verbs, "list", cmd_subject_list, "list the subjects")
    show = _verb(verbs, "show", cmd_subject_show, "show a subject and its courses")
    show.add_argument("code", metavar="CODE")


def _course_commands(commands: Any) -> None:
    from . import rules

    parser = commands.add_parser("course", formatter_class=_Formatter,
                                 help="treatment courses: plan, schedule, review")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    start = _verb(
        verbs, "start", cmd_course_start, "start a course for a subject", who=True,
        epilog="example:\n  ionto course start S014 --drug bupivacaine "
               "--protocol examples/bupivacaine_30min.toml --trial-count 6")
    start.add_argument("subject", metavar="SUBJECT")
    start.add_argument("--drug", required=True, help="the course's drug")
    start.add_argument("--protocol", metavar="FILE.toml",
                       help="protocol file for the sessions (its SHA-256 is recorded)")
    start.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a protocol setting instead of a file, e.g. current_mA=2.0 "
                            "(keys of the protocol file's [protocol] table)")
    start.add_argument("--trial-count", type=int, default=rules.TRIAL_COUNT_DEFAULT,
                       metavar="N", help=f"sessions in the trial, "
                       f"{rules.TRIAL_COUNT_RANGE[0]}-{rules.TRIAL_COUNT_RANGE[1]} "
                       f"(default {rules.TRIAL_COUNT_DEFAULT})")
    start.add_argument("--min-interval", type=int, default=rules.MIN_INTERVAL_DEFAULT_DAYS,
                       metavar="DAYS", help=f"minimum days between sessions (default "
                       f"{rules.MIN_INTERVAL_DEFAULT_DAYS}: twice weekly)")
    start.add_argument("--weekly-after", type=int, default=rules.WEEKLY_AFTER_DEFAULT_DAYS,
                       metavar="DAYS", help=f"go weekly after this many days (default "
                       f"{rules.WEEKLY_AFTER_DEFAULT_DAYS})")
    start.add_argument("--start", metavar="DATE", help="start date (default today)")
    start.add_argument("--note", default="")
    show = _verb(verbs, "show", cmd_course_show, "show a course: plan, next session, history")
    show.add_argument("course", metavar="COURSE")
    lst = _verb(verbs, "list", cmd_course_list, "list courses")
    lst.add_argument("--subject", metavar="SUBJECT", help="only this subject's courses")
    review = _verb(
        verbs, "review", cmd_course_review, "record the specialist's review of a course",
        who=True, epilog="example:\n  ionto course review 3 --decision change-medication "
                         "--drug ketamine --note 'NRS unchanged after 6'")
    review.add_argument("course", metavar="COURSE")
    review.add_argument("--decision", required=True, metavar="|".join(rules.DECISIONS))
    review.add_argument("--drug", help="the new drug (with change-medication)")
    review.add_argument("--note", default="")
    review.add_argument("--date", metavar="DATE", help="date of the decision (default today)")
    review.add_argument("--corrects", type=int, metavar="REVIEW_ID",
                        help="this review corrects an earlier one (which stays recorded)")


def _session_commands(commands: Any) -> None:
    from . import rules

    parser = commands.add_parser("session", formatter_class=_Formatter,
                                 help="a session's before/after form")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    grades = "|".join(rules.GRADES)
    observe = _verb(
        verbs, "observe", cmd_session_observe,
        "record the before/after form of a session (or next-day items)", who=True,
        epilog="examples:\n  ionto session observe 3 --phase before --nrs 7\n"
               "  ionto session observe 3 --phase after --nrs 4 --anode-redness mild "
               "--dizziness mild\n  ionto session observe 3 --phase next-day --dark-urine none "
               "--constipation mild --date 2026-11-28")
    observe.add_argument("course", metavar="COURSE")
    observe.add_argument("--session", type=int, metavar="N",
                         help="session number in the course (default: the latest)")
    observe.add_argument("--phase", required=True, metavar="|".join(rules.PHASES))
    observe.add_argument("--nrs", type=int, metavar="0-10", help="pain score (NRS 0-10)")
    for name in rules.GRADED_FIELDS:
        label = rules.SIDE_EFFECTS.get(name, name.replace("_", " ") + " at the patch")
        observe.add_argument("--" + name.replace("_", "-"), dest=name, metavar=grades,
                             help=label)
    observe.add_argument("--note", default="")
    observe.add_argument("--date", metavar="DATE",
                         help="when it was observed (default now; next-day items: that day)")
    observe.add_argument("--corrects", type=int, metavar="OBSERVATION_ID",
                         help="this form corrects an earlier one (which stays recorded)")


def _audit_commands(commands: Any) -> None:
    parser = commands.add_parser("audit", formatter_class=_Formatter,
                                 help="verify the record's audit trail")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verify = _verb(verbs, "verify", cmd_audit_verify,
                   "check the hash chain, every recorded row and the results files",
                   epilog="Exit 0 when intact; 3 naming every edited or deleted entry or row "
                          "and every changed or missing results file.")
    verify.add_argument("--no-files", action="store_true",
                        help="skip the results files (e.g. on a station without them)")


def _export_command(commands: Any) -> None:
    export = _verb(commands, "export", cmd_export,
                   "export a course to CSV + JSON, with a NIBS-BIDS-like sidecar per session",
                   epilog="example:\n  ionto export 3 -o exports/")
    export.add_argument("course", metavar="COURSE")
    export.add_argument("-o", "--output", metavar="DIR", default=".",
                        help="directory for the files (default: here)")


def _db_commands(commands: Any) -> None:
    parser = commands.add_parser("db", formatter_class=_Formatter,
                                 help="the records database: where it is, upgrade its schema")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    _verb(verbs, "status", cmd_db_status, "show which database is used and its schema")
    _verb(verbs, "upgrade", cmd_db_upgrade, "upgrade the schema (back the database up first)")


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """`ionto run --course COURSE`: record the run as the course's next session."""
    group = run.add_argument_group("course record")
    group.add_argument("--course", metavar="COURSE",
                       help="record this run as the next session of the course (refused runs "
                            "too); its protocol, drug and subject are used")
    group.add_argument("--db", metavar="URL", help="records database (default: $IONTO_DB, "
                                                   "else the user data dir)")
    group.add_argument("--operator", metavar="NAME", help="who runs the session (recorded)")
    group.add_argument("--reason", metavar="TEXT",
                       help="why a session sooner than the plan's interval is needed "
                            "(recorded)")


# -- plumbing ------------------------------------------------------------------------------


def _guarded(handler: Handler) -> Handler:
    """Map the record's exceptions to exit codes with one line on stderr (and JSON)."""
    def run(args: argparse.Namespace) -> int:
        from .rules import RecordValueError
        from .store import NotFound, RecordsUnavailable

        try:
            return handler(args)
        except (RecordValueError, NotFound) as exc:
            return _fail(args, EXIT_INVALID, str(exc), getattr(exc, "field", None))
        except RecordsUnavailable as exc:
            return _fail(args, EXIT_UNAVAILABLE, str(exc), "db")
    return run


def _fail(args: argparse.Namespace, code: int, message: str, field: str | None) -> int:
    print(f"{_prog(args)}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    if getattr(args, "json", False):
        _json({"error": message, "field": field, "exit_code": code})
    return code


def _prog(args: argparse.Namespace) -> str:
    verb = getattr(args, "verb", None)
    return f"ionto {args.command}" + (f" {verb}" if verb else "")


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _open(args: argparse.Namespace, create: bool = True) -> Store:
    """The record; an explicit --db naming a SQLite file that does not exist is an error (a
    typo must not start a new, empty record), while the default file is made on first use."""
    from .store import RecordsUnavailable, Store, missing_sqlite_file, resolve_url

    explicit = getattr(args, "db", None)
    if explicit and missing_sqlite_file(resolve_url(explicit)) is not None:
        raise RecordsUnavailable(
            f"there is no records database at {explicit} (no such file); to create a new "
            f"one there, run `ionto db upgrade --db {explicit}`")
    return Store(explicit, create=create)


def parse_when(text: str | None, field: str, *, end_of_day: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD, local) or ISO date-time; RecordValueError names the field."""
    from .rules import RecordValueError

    if text is None:
        return None
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            now = datetime.now().astimezone()
            moment = (now.timetz().replace(tzinfo=None) if day == now.date()
                      else time(23, 59) if end_of_day else time(12, 0))
            return datetime.combine(day, moment).astimezone().astimezone(UTC)
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RecordValueError(field, f"{text!r} is not a date (YYYY-MM-DD) or an ISO "
                                      f"date-time") from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.astimezone(UTC)


def _local(when: datetime | None) -> str:
    if when is None:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


# -- subjects ----------------------------------------------------------------------------


def cmd_subject_add(args: argparse.Namespace) -> int:
    """`ionto subject add CODE`."""
    from .store import check_who

    with _open(args) as store:
        subject = store.add_subject(args.code, check_who(args.operator), args.note)
    if args.json:
        _json(_subject_dict(subject))
    else:
        print(f"Subject {subject.code} added.")
    return EXIT_OK


def cmd_subject_list(args: argparse.Namespace) -> int:
    """`ionto subject list`."""
    with _open(args) as store:
        subjects = store.subjects()
        courses = store.courses()
    counts: dict[int, int] = {}
    for course in courses:
        counts[course.subject_id] = counts.get(course.subject_id, 0) + 1
    if args.json:
        _json([{**_subject_dict(s), "courses": counts.get(s.id, 0)} for s in subjects])
        return EXIT_OK
    if not subjects:
        print("No subjects yet: `ionto subject add CODE`.")
    for subject in subjects:
        print(f"{subject.code:<16} {counts.get(subject.id, 0)} course(s)  {subject.note}")
    return EXIT_OK


def cmd_subject_show(args: argparse.Namespace) -> int:
    """`ionto subject show CODE`."""
    with _open(args) as store:
        subject = store.subject(args.code)
        courses = store.courses(subject.code)
    if args.json:
        _json({**_subject_dict(subject), "courses": [_course_dict(c) for c in courses]})
        return EXIT_OK
    print(f"Subject {subject.code} (added {_local(subject.created_at)} by "
          f"{subject.created_by}) {subject.note}")
    for course in courses:
        print(f"  course {course.id}: {course.drug}, started {_local(course.started_on)[:10]}")
    if not courses:
        print(f"  no course yet: `ionto course start {subject.code} --drug NAME`")
    return EXIT_OK


def _subject_dict(subject: Any) -> dict[str, Any]:
    return {"subject": subject.code, "note": subject.note,
            "created_at": subject.created_at, "created_by": subject.created_by}


# -- courses ---------------------------------------------------------------------------------


def _course_settings(pairs: list[str]) -> dict[str, Any]:
    from ..protocol_file import BY_KEY, ProtocolError, check_value
    from .rules import RecordValueError

    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        setting = BY_KEY.get(f"protocol.{key.strip()}")
        if not sep or setting is None or setting.parameter == "drug":
            valid = ", ".join(s.name for s in BY_KEY.values()
                              if s.table == "protocol" and s.parameter != "drug")
            raise RecordValueError("set", f"{pair!r}: use KEY=VALUE with KEY one of {valid} "
                                          f"(the drug is --drug)")
        try:
            value: Any = setting.kind(raw.strip())
            settings[setting.name] = check_value(setting, value, f"--set {pair}")
        except (ValueError, ProtocolError) as exc:
            raise RecordValueError("set", str(exc)) from None
    return settings


def cmd_course_start(args: argparse.Namespace) -> int:
    """`ionto course start SUBJECT --drug NAME`."""
    from .store import check_who

    settings = _course_settings(args.set)
    if args.protocol and settings:
        from .rules import RecordValueError

        raise RecordValueError("set", "give a protocol file or settings, not both")
    with _open(args) as store:
        course = store.start_course(
            args.subject, args.drug, check_who(args.operator), trial_count=args.trial_count,
            min_interval_days=args.min_interval, weekly_after_days=args.weekly_after,
            protocol_path=args.protocol, settings=settings,
            started_on=parse_when(args.start, "start"), note=args.note)
        subject = store.subject_of(course)
    if args.json:
        _json(_course_dict(course, subject.code))
    else:
        print(f"Course {course.id} started for {subject.code}: {course.drug}, trial of "
              f"{course.trial_count}, at least {course.min_interval_days} days apart, weekly "
              f"after {course.weekly_after_days} days. Run a session with "
              f"`ionto run --course {course.id} --screening-confirmed`.")
    return EXIT_OK


def cmd_course_list(args: argparse.Namespace) -> int:
    """`ionto course list [--subject S]`."""
    with _open(args) as store:
        courses = store.courses(args.subject)
        codes = {s.id: s.code for s in store.subjects()}
        rows = [(c, len(store.sessions(c.id))) for c in courses]
    if args.json:
        _json([{**_course_dict(c, codes[c.subject_id]), "sessions": n} for c, n in rows])
        return EXIT_OK
    if not rows:
        print("No courses yet: `ionto course start SUBJECT --drug NAME`.")
    for course, n in rows:
        print(f"{course.id:>5}  {codes[course.subject_id]:<16} {course.drug:<14} "
              f"{n}/{course.trial_count} sessions  started {_local(course.started_on)[:10]}")
    return EXIT_OK


def course_view(store: Store, course_id: int | str) -> dict[str, Any]:
    """Everything `course show`, the panel and the export show of a course, as plain data."""
    from .rules import no_drive_sentence

    course = store.course(course_id)
    subject = store.subject_of(course)
    verdict = store.plan_next(course.id)
    sessions = []
    for session, outcome in store.sessions(course.id):
        sessions.append({**_session_dict(session, outcome),
                         "observations": [_observation_dict(o)
                                          for o in store.observations(session.id)]})
    from .rules import projected_schedule
    from .store import to_utc

    delivered_count = sum(1 for s in sessions if s["treatment"])
    today = datetime.now().astimezone().date()
    schedule = projected_schedule(
        started_on=to_utc(course.started_on).astimezone().date(),
        first_free=max(verdict.earliest or today, today), delivered=delivered_count,
        trial_count=course.trial_count, min_interval_days=course.min_interval_days,
        weekly_after_days=course.weekly_after_days, reviewed=bool(store.reviews(course.id)),
        horizon=min(9, max(2, course.trial_count - delivered_count + 1)))
    return {
        **_course_dict(course, subject.code),
        "drug_now": verdict.drug,
        "schedule": [{"date": day.isoformat(), "what": what} for day, what in schedule],
        "next_session": {
            "number": verdict.number, "allowed": verdict.allowed,
            "earliest": verdict.earliest.isoformat() if verdict.earliest else None,
            "refusals": [{"rule": r.rule, "message": r.message, "overridable": r.overridable}
                         for r in verdict.refusals],
            "no_drive": verdict.no_drive,
            "no_drive_text": (no_drive_sentence(verdict.no_drive_reason)
                              if verdict.no_drive else ""),
            "notes": list(verdict.notes)},
        "sessions": sessions,
        "reviews": [_review_dict(r) for r in store.reviews(course.id)],
    }


def cmd_course_show(args: argparse.Namespace) -> int:
    """`ionto course show COURSE`."""
    with _open(args) as store:
        view = course_view(store, args.course)
    if args.json:
        _json(view)
        return EXIT_OK
    print(f"Course {view['course']} for {view['subject']}: {view['drug_now']}"
          f"{' (started with ' + view['drug'] + ')' if view['drug'] != view['drug_now'] else ''}"
          f"; plan: trial of {view['trial_count']}, at least {view['min_interval_days']} days "
          f"apart, weekly after {view['weekly_after_days']} days; protocol "
          f"{view['protocol'] or view['settings'] or 'flags at each run'}")
    for s in view["sessions"]:
        flag = ("  SIMULATED (not a treatment)" if s["simulated"] else
                "  NO DRIVING" if s["no_drive"] else "")
        dose = f"{s['delivered_dose_mA_min']:.1f} mA*min" if s["outcome"] else ""
        print(f"  #{s['number']:<2} {_local(s['started_at'])}  {s['outcome'] or 'no outcome':<9}"
              f" {s['rule'] or '':<14} {dose:<14} {s['operator']}{flag}")
        for o in s["observations"]:
            print(f"      {o['phase']:<8} NRS {o['nrs'] if o['nrs'] is not None else '-':<3} "
                  f"{o['effects'] or 'no side effects'}  {o['note']}")
    for r in view["reviews"]:
        print(f"  review {_local(r['decided_on'])[:10]}: {r['decision']}"
              f"{' -> ' + r['new_drug'] if r['new_drug'] else ''} ({r['reviewer']}) {r['note']}")
    print("(#N: the record's session number, counting every attempt, refused and simulated "
          "ones too; the schedule counts treatments.)")
    print("Schedule: " + "; ".join(f"{p['date']} {p['what']}" for p in view["schedule"]))
    nxt = view["next_session"]
    if nxt["allowed"]:
        print(f"Next: session {nxt['number']} may start"
              f"{' (earliest ' + nxt['earliest'] + ')' if nxt['earliest'] else ''}.")
    for refusal in nxt["refusals"]:
        print(f"Next: {refusal['message']}")
    for note in nxt["notes"]:
        print(f"Note: {note}")
    if nxt["no_drive"]:
        print(nxt["no_drive_text"])
    return EXIT_OK


def cmd_course_review(args: argparse.Namespace) -> int:
    """`ionto course review COURSE --decision D`."""
    from .store import check_who

    with _open(args) as store:
        review = store.review(args.course, args.decision, check_who(args.operator), args.note,
                              new_drug=args.drug, decided_on=parse_when(args.date, "date"),
                              corrects=args.corrects)
    if args.json:
        _json(_review_dict(review))
    else:
        print(f"Review {review.id} of course {review.course_id} recorded: {review.decision}"
              f"{' -> ' + review.new_drug if review.new_drug else ''}.")
    return EXIT_OK


def _course_dict(course: Any, subject_code: str = "") -> dict[str, Any]:
    return {"course": course.id, "subject": subject_code, "drug": course.drug,
            "protocol": course.protocol_path, "protocol_sha256": course.protocol_sha256,
            "settings": json.loads(course.settings_json or "{}"),
            "trial_count": course.trial_count, "min_interval_days": course.min_interval_days,
            "weekly_after_days": course.weekly_after_days, "started_on": course.started_on,
            "created_by": course.created_by, "note": course.note}


def _session_dict(session: Any, outcome: Any) -> dict[str, Any]:
    from .store import is_simulated, treated

    return {
        "session_id": session.id, "number": session.number, "started_at": session.started_at,
        "simulated": is_simulated(session), "treatment": treated(session, outcome),
        "operator": session.operator, "station": session.station, "drug": session.drug,
        "settings": json.loads(session.settings_json or "{}"),
        "screening": json.loads(session.screening_json or "{}"),
        "screening_date": session.screening_date,
        "no_drive": session.no_drive and (outcome is None or outcome.outcome != "refused"),
        "no_drive_text": session.no_drive_reason, "override_rule": session.override_rule,
        "override_reason": session.override_reason,
        "outcome": outcome.outcome if outcome else None,
        "rule": outcome.rule if outcome else None,
        "reason": outcome.reason if outcome else "",
        "planned_dose_mA_min": outcome.planned_dose_mA_min if outcome else None,
        "delivered_dose_mA_min": outcome.delivered_dose_mA_min if outcome else 0.0,
        "duration_s": outcome.duration_s if outcome else 0.0,
        "results_csv": outcome.results_csv if outcome else None,
        "results_csv_sha256": outcome.results_csv_sha256 if outcome else None,
        "summary_json": outcome.summary_json if outcome else None,
        "summary_json_sha256": outcome.summary_json_sha256 if outcome else None,
    }


def _observation_dict(obs: Any) -> dict[str, Any]:
    from .rules import GRADED_FIELDS

    grades = {name: getattr(obs, name) for name in GRADED_FIELDS}
    effects = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in grades.items()
                        if v not in (None, "none"))
    return {"observation_id": obs.id, "phase": obs.phase, "observed_at": obs.observed_at,
            "recorded_by": obs.recorded_by, "nrs": obs.nrs, "grades": grades,
            "effects": effects, "note": obs.note, "corrects": obs.corrects_id}


def _review_dict(review: Any) -> dict[str, Any]:
    return {"review_id": review.id, "course": review.course_id,
            "decided_on": review.decided_on, "reviewer": review.reviewer,
            "decision": review.decision, "new_drug": review.new_drug, "note": review.note,
            "corrects": review.corrects_id}


# -- sessions --------------------------------------------------------------------------------


def cmd_session_observe(args: argparse.Namespace) -> int:
    """`ionto session observe COURSE --phase before|after|next-day ...`."""
    from .rules import GRADED_FIELDS
    from .store import check_who

    grades = {name: getattr(args, name) for name in GRADED_FIELDS
              if getattr(args, name) is not None}
    with _open(args) as store:
        session = store.session_by_number(args.course, args.session)
        obs = store.observe(session.id, args.phase, check_who(args.operator), nrs=args.nrs,
                            grades=grades, note=args.note,
                            observed_at=parse_when(args.date, "date"), corrects=args.corrects)
        plan = store.plan_next(args.course)
    burn = any(v not in (None, "none") for k, v in grades.items() if k.endswith("_burn"))
    if args.json:
        _json({**_observation_dict(obs), "course": str(args.course),
               "session": session.number, "course_on_hold": burn})
    else:
        print(f"Observation {obs.id} ({obs.phase}) recorded for session {session.number} of "
              f"course {args.course}.")
        if burn:
            for refusal in plan.refusals:
                if refusal.rule == "burn-hold":
                    print(refusal.message)
    return EXIT_OK


# -- audit, export, db -----------------------------------------------------------------------


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """`ionto audit verify`: exit 3 naming every problem."""
    with _open(args, create=False) as store:
        report = store.verify(check_files=not args.no_files)
        where = store.where
    if args.json:
        _json({"db": where, **report.as_dict()})
    else:
        for problem in report.problems:
            print(f"PROBLEM {problem.kind}: {problem.message}")
        state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
        print(f"Audit trail {state}: {report.entries} entries, {report.rows} rows, "
              f"{report.files_checked} results files checked; head {report.head_hash[:16]} "
              f"({where}).")
    return EXIT_OK if report.ok else EXIT_REFUSED


def cmd_export(args: argparse.Namespace) -> int:
    """`ionto export COURSE`: CSV + JSON of the course, one sidecar JSON per session."""
    from .export import export_course

    with _open(args, create=False) as store:
        written = export_course(store, args.course, Path(args.output))
    if args.json:
        _json({"files": [str(p) for p in written]})
    else:
        for path in written:
            print(path)
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    """`ionto db status`."""
    from .store import head_revision

    with _open(args, create=False) as store:
        entries = len(store.audit_entries(1))
        where = store.where
    data = {"db": where, "schema": head_revision(), "current": True, "empty": entries == 0}
    if args.json:
        _json(data)
    else:
        print(f"Records database {where}: schema {data['schema']} (current).")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """`ionto db upgrade`: bring an old schema to this version's."""
    from .store import (
        RecordsUnavailable,
        current_revision,
        display_url,
        head_revision,
        make_engine,
        resolve_url,
        upgrade,
    )

    url = resolve_url(args.db)
    try:
        engine = make_engine(url, create_dirs=True)
        before = current_revision(engine)
        upgrade(engine)
        engine.dispose()
    except Exception as exc:
        raise RecordsUnavailable(f"cannot upgrade {display_url(url)}: {exc}") from None
    data = {"db": display_url(url), "from": before, "to": head_revision()}
    if args.json:
        _json(data)
    else:
        print(f"Records database {data['db']}: schema {before or 'empty'} -> {data['to']}.")
    return EXIT_OK


# -- ionto run --course ------------------------------------------------------------------------


def run_with_course(args: argparse.Namespace, run: Handler,
                    check: Callable[[argparse.Namespace], bool] | None = None) -> int:
    """`ionto run --course C`: write the session first (refused runs too), then run, then
    record the outcome with the results files' hashes. Without --course: just `run`.

    `check` validates the flags with the course's settings applied (its UsageError is exit 2,
    before anything is recorded or printed) and says whether the run is on the simulator."""
    if not getattr(args, "course", None):
        return run(args)
    from .rules import RecordValueError
    from .store import NotFound, RecordsUnavailable, check_who, screening_all_no

    try:
        store = _open(args)
    except RecordsUnavailable as exc:
        return _fail(args, EXIT_UNAVAILABLE, f"{exc}. The run was not started: a session of a "
                                             f"course is only run with its record.", "db")
    with store:
        try:
            operator = check_who(args.operator)
            course = store.course(args.course)
            subject = store.subject_of(course)
            plan = store.plan_next(course.id, args.reason)
            _apply_course(args, course, subject.code, plan.drug)
            simulated = check(args) if check is not None else False
            settings = {k: v for k, v in vars(args).items()
                        if isinstance(v, str | int | float | bool) and v is not None
                        and k not in ("json", "verbose", "db", "operator", "command")}
            opened = store.open_session(
                course.id, operator, settings=settings,
                screening=screening_all_no() if args.screening_confirmed else None,
                override_reason=args.reason, simulated=simulated)
        except (RecordValueError, NotFound) as exc:
            return _fail(args, EXIT_INVALID, str(exc), getattr(exc, "field", None))
        session = opened.session
        err = sys.stderr if args.json else sys.stdout
        if opened.refused:
            for refusal in opened.verdict.refusals:
                print(f"ionto run: {refusal.message}", file=sys.stderr, flush=True)
            print(f"Session {session.number} of course {course.id} recorded as refused "
                  f"({opened.verdict.refusals[0].rule}). Nothing was energized.", file=err)
            if args.json:
                _json({"outcome": "refused", "rule": opened.verdict.refusals[0].rule,
                       "reason": opened.outcome.reason if opened.outcome else "",
                       "course": course.id, "session_number": session.number,
                       "results_file": None})
            return EXIT_REFUSED
        for note in opened.verdict.notes:
            print(f"Course note: {note}", file=err)
        if simulated:
            print(f"SIMULATED: session {session.number} of course {course.id} runs on the "
                  f"simulator; it is recorded as SIMULATED and never counts as a treatment "
                  f"(trial count, interval, no-driving rule).", file=err, flush=True)
        if session.no_drive:
            print(session.no_drive_reason, file=err, flush=True)
        summaries: list[dict[str, Any]] = []
        args.on_summary = summaries.append
        args.session_id = args.session_id or f"course{course.id}-{session.number}"
        try:
            code = run(args)
        except BaseException as exc:
            _record_failure(store, session.id, exc, operator)
            raise
        if summaries:
            try:
                store.record_outcome(session.id, summaries[-1], operator)
            except Exception as exc:
                print(f"ionto run: error: the run ended ({summaries[-1].get('outcome')}) but its "
                      f"outcome could not be recorded in {store.where}: {exc}. The results "
                      f"files are on disk; session {session.number} of course {course.id} "
                      f"shows no outcome.", file=sys.stderr, flush=True)
                return code or EXIT_INTERNAL
            print(f"Recorded as {'SIMULATED ' if simulated else ''}session {session.number} "
                  f"of course {course.id} ({store.where}).", file=err)
        if session.no_drive:
            print(session.no_drive_reason, file=err, flush=True)
        return code


def _apply_course(args: argparse.Namespace, course: Any, subject_code: str, drug: str) -> None:
    """Take the course's protocol, drug and subject unless the flags say otherwise."""
    from ..protocol_file import BY_KEY
    from .audit import file_sha256
    from .rules import RecordValueError
    from .store import check_drug

    if args.protocol is None and course.protocol_path:
        args.protocol = course.protocol_path
        try:
            changed = file_sha256(course.protocol_path) != course.protocol_sha256
        except OSError as exc:
            raise RecordValueError("protocol", f"course {course.id}'s protocol file "
                                   f"{course.protocol_path} cannot be read "
                                   f"({exc.strerror or exc})") from None
        if changed:
            raise RecordValueError("protocol", f"course {course.id}'s protocol file "
                                   f"{course.protocol_path} changed since the course started "
                                   f"(SHA-256 differs): restore it, or start a new course")
    for name, value in json.loads(course.settings_json or "{}").items():
        setting = BY_KEY.get(f"protocol.{name}")
        if setting is not None and getattr(args, setting.dest, None) is None:
            setattr(args, setting.dest, value)
    if args.drug is not None and check_drug(args.drug) != drug:
        raise RecordValueError("drug", f"--drug {args.drug}: course {course.id}'s drug is now "
                                       f"{drug}; a change of medication is a review decision")
    args.drug = drug
    if args.subject not in (None, "human"):
        raise RecordValueError("subject", f"--subject {args.subject}: a course's sessions "
                                          f"treat a human subject")
    args.subject = "human"
    if args.subject_id not in (None, subject_code):
        raise RecordValueError("subject-id", f"--subject-id {args.subject_id}: course "
                                             f"{course.id} belongs to {subject_code}")
    args.subject_id = subject_code


def _record_failure(store: Store, session_id: int, exc: BaseException, who: str) -> None:
    """Record a run that never produced a summary (bad flags, no instrument, an error)."""
    name = type(exc).__name__
    outcome, rule = ("refused", "pre-flight") if name == "UsageError" else (
        ("fault", "instrument-fault") if name == "InstrumentUnavailable" else ("error", None))
    try:
        store.record_outcome(session_id, {"outcome": outcome, "rule": rule,
                                          "reason": " ".join(str(exc).split()) or name,
                                          "delivered_dose_mA_min": 0.0}, who)
    except Exception as record_exc:
        print(f"ionto run: error: could not record the refused session: {record_exc}",
              file=sys.stderr, flush=True)
