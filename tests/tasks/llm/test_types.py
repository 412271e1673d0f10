from tasks.llm.types import chat_messages

CONVERSATION = [
    {"role": "system", "content": "You are Acme's support desk."},
    {"role": "user", "content": "My order is late."},
    {"role": "assistant", "content": "Which order?"},
    {"role": "user", "content": "Number 12."},
]


def test_a_text_prompt_is_one_user_turn_after_the_teacher_s_system_prompt():
    assert chat_messages("Hi", "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert chat_messages("Hi", None) == [{"role": "user", "content": "Hi"}]


def test_a_conversation_is_asked_whole_and_keeps_its_own_system_turn():
    assert chat_messages(CONVERSATION, "Be brief.") == CONVERSATION  # the log's own system turn wins
    assert (
        chat_messages(CONVERSATION[1:], "Be brief.") == [{"role": "system", "content": "Be brief."}] + CONVERSATION[1:]
    )
