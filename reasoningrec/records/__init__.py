"""Prompt/completion records for fine-tuning and scoring; K-shot sampling.

A record asks "will this user like the target item?" with the user's profile, their recent liked and
disliked items (oldest first) and the target item, and answers ``Prediction: Yes|No`` then a newline
and the reasoning. Variants of that layout (which inputs each reads, whether its completion carries
reasoning) are defined in :mod:`reasoningrec.methods`.

Instruction text lives in ``reasoningrec/prompts/records/*.txt``. Records are rendered with the base
model's chat template (user turn = prompt, assistant turn = completion) into TRL's prompt/completion
strings. A record longer than ``records.max_length`` tokens loses its oldest history items first;
the answer is never cut.

Modules: :mod:`~.prompt` (prompt and completion text, templates), :mod:`~.fit` (the token budget),
:mod:`~.kshot` (nested, label-stratified K-shot sets), :mod:`~.inputs` (the item and user texts of
the stage files a prompt shows), :mod:`~.assemble` (records from the stage files), :mod:`~.stage`
(``run_records``, ``read_records``).
"""
