"""What the page's buttons do, as plain functions of the project folder and of the values the
page sends: no Gradio here, so every action is tested without a browser (the tab modules
under :mod:`asrtune.ui.tabs` lay out the page and wire these in).

Every action calls the library (``asrtune.api``, ``asrtune.data``, ``asrtune.publish`` through
:mod:`asrtune.ui.hub`), the same functions as the CLI. An action a user starts returns a
:class:`~asrtune.ui.result.Result` (ok, message, details); views return what the page shows.
User errors never raise. One module per tab: :mod:`.data`, :mod:`.train`, :mod:`.results`
(Evaluate, Try it), :mod:`.publish`; :mod:`.common` holds the form's defaults.
"""

from asrtune.ui.actions.common import (
    FORM_DEFAULTS,
    LEARNING_RATE_HINT,
    USER_ERRORS,
    error_text,
    saved_form,
)
from asrtune.ui.actions.data import (
    add_uploads,
    check_data,
    check_path,
    current_phrases,
    data_signature,
    data_summary,
    delete_row,
    language_problem,
    last_check,
    load_row,
    move_phrase,
    next_unrecorded,
    phrase_view,
    rows_table,
    save_recording,
    save_row,
    save_source,
    set_language,
    undo_delete,
    use_source,
)
from asrtune.ui.actions.publish import (
    card_preview,
    publish_dataset,
    publish_demo,
    publish_model,
    upload_mode_problem,
)
from asrtune.ui.actions.results import (
    evaluate_run,
    evaluation_view,
    has_model,
    missed_terms,
    record_missed_terms,
    run_model,
    transcribe_clip,
)
from asrtune.ui.actions.train import (
    form_values,
    make_tiny,
    run_choices,
    run_label,
    run_signature,
    run_view,
    start_training,
    stop_training,
)

__all__ = [
    "FORM_DEFAULTS",
    "LEARNING_RATE_HINT",
    "USER_ERRORS",
    "add_uploads",
    "card_preview",
    "check_data",
    "check_path",
    "current_phrases",
    "data_signature",
    "data_summary",
    "delete_row",
    "error_text",
    "evaluate_run",
    "evaluation_view",
    "form_values",
    "has_model",
    "language_problem",
    "last_check",
    "load_row",
    "make_tiny",
    "missed_terms",
    "move_phrase",
    "next_unrecorded",
    "phrase_view",
    "publish_dataset",
    "publish_demo",
    "publish_model",
    "record_missed_terms",
    "rows_table",
    "run_choices",
    "run_label",
    "run_model",
    "run_signature",
    "run_view",
    "save_recording",
    "save_row",
    "save_source",
    "saved_form",
    "set_language",
    "start_training",
    "stop_training",
    "transcribe_clip",
    "undo_delete",
    "upload_mode_problem",
    "use_source",
]
