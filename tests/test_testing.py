"""The tiny test model is a usable chat model whose answer words are single tokens."""

from transformers import AutoModelForCausalLM, AutoTokenizer


def test_tiny_model_loads_and_generates(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Will the user like it?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    inputs = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5 or tokenizer.eos_token_id in out[0].tolist()
    yes = tokenizer.encode(" Yes", add_special_tokens=False)
    no = tokenizer.encode(" No", add_special_tokens=False)
    assert len(yes) == len(no) == 1 and yes != no
    assert {"q_proj", "v_proj"} <= {name.split(".")[-1] for name, _ in model.named_modules()}
