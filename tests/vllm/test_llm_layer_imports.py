"""vLLM's environment has neither Prefect nor our pins: the parts of the LLM layer it runs import without them."""

import sys


def test_the_llm_layer_imports_with_stdlib_and_pydantic_only():
    import tasks.llm.config
    import tasks.llm.store
    import tasks.llm.types
    import tasks.llm.vllm_engine  # noqa: F401

    assert "prefect" not in sys.modules and "pyarrow" not in sys.modules
