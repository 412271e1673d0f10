from transformers import AutoModelForCausalLM, AutoTokenizer

from tasks.llm.local import generate


def test_a_batch_answers_as_each_prompt_alone_whichever_side_the_tokenizer_pads(tiny_teacher):
    """A GGUF's tokenizer loads padding on the right: a batch must still be padded on the left for generation."""
    model = AutoModelForCausalLM.from_pretrained(tiny_teacher).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    prompts = ["Hi", "Quelle est la capitale de l'Australie, s'il vous plaît ?", "東京の人口は？"]
    alone = [generate(model, tokenizer, [p], max_new_tokens=6)[0][0].text for p in prompts]
    tokenizer.padding_side = "right"
    assert [c[0].text for c in generate(model, tokenizer, prompts, max_new_tokens=6)] == alone
