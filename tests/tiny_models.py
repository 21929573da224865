"""Tiny random transformers / diffusers models built from configs, for tests and benchmarks.

Nothing is downloaded: each builder trains a byte-level BPE tokenizer on a few sentences, builds a
model from a real config with random weights and saves model + processor with `save_pretrained`,
so the adapters run their real loading and generation code on the folder. RANDOM WEIGHTS: the
outputs mean nothing, only the code paths are real.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = ["move the red block to the left", "push the cup forward", "open the drawer", "close the door",
          "pick up the green ball", "user assistant system describe the action between the two images",
          "what changed? answer with the action", "put the apple in the bowl"] * 10


def bpe_tokenizer(specials: list[str], vocab_size: int = 400, add_bos: bool = False, **special_kwargs):
    """A byte-level BPE tokenizer (tokenizers library) trained offline, wrapped for transformers;
    `add_bos` prepends `bos_token` to every encoding, as the Llama tokenizers of Janus and
    Chameleon do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(CORPUS, trainer)
    if add_bos:
        bos = special_kwargs["bos_token"]
        raw.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, raw.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=raw, **special_kwargs)


QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

SIMPLE_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() }}: {% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}{{ IMAGE }}"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def simple_template(image_token: str) -> str:
    return SIMPLE_TEMPLATE.replace("{{ IMAGE }}", image_token)


def build_qwen2_vl(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor, Qwen2VLVideoProcessor)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    tok = bpe_tokenizer(specials, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 16, patch_size=14,
                                            merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_TEMPLATE)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_chans=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_llava_onevision(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = bpe_tokenizer(specials, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    size = 28
    image_processor = LlavaOnevisionImageProcessor(size={"height": size, "width": size}, crop_size=size,
                                                   image_grid_pinpoints=[[size, size], [size, 2 * size]])
    template = QWEN_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<image>")
    processor = LlavaOnevisionProcessor(image_processor=image_processor, tokenizer=tok,
                                        video_processor=LlavaOnevisionVideoProcessor(), num_image_tokens=16,
                                        vision_feature_select_strategy="full", chat_template=template)
    config = LlavaOnevisionConfig(
        text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, image_size=size, patch_size=7),
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], vision_feature_layer=-1,
        vision_feature_select_strategy="full", image_grid_pinpoints=[[size, size], [size, 2 * size]],
        vision_aspect_ratio="anyres_max_9")
    torch.manual_seed(seed)
    LlavaOnevisionForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_idefics3(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    rows = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
                "<global-img>", *rows]
    tok = bpe_tokenizer(specials, eos_token="<end_of_utterance>", pad_token="<|endoftext|>",
                        bos_token="<|im_start|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    size, patch, scale = 28, 7, 2
    image_processor = Idefics3ImageProcessor(size={"longest_edge": 2 * size}, max_image_size={"longest_edge": size},
                                             do_image_splitting=False)
    seq_len = (size // patch) ** 2 // scale ** 2
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=seq_len,
                                  chat_template=simple_template("<image>"))
    config = Idefics3Config(
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, eos_token_id=ids["<end_of_utterance>"],
                         pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|im_start|>"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=size, patch_size=patch),
        image_token_id=ids["<image>"], scale_factor=scale, pad_token_id=ids["<|endoftext|>"])
    torch.manual_seed(seed)
    Idefics3ForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def clip_tokenizer():
    """A CLIPTokenizer over the byte alphabet (each character and its end-of-word form) plus a
    few merges, built offline in the format of the real CLIP vocab/merges."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges = [("t", "h"), ("th", "e</w>"), ("o", "n"), ("e", "d</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def build_instruct_pix2pix(folder: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = clip_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=8,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=4, sample_size=16)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.pad_token_id))
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=EulerAncestralDiscreteScheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def build_janus(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusImageProcessor, JanusProcessor

    # "<｜▁pad▁｜>": the pad upstream's VLChatProcessor uses, distinct from the tokenizer's pad token
    specials = ["<|begin_of_sentence|>", "<|end_of_sentence|>", "<|pad|>", "<image_placeholder>",
                "<begin_of_image>", "<end_of_image>", "<\uff5c\u2581pad\u2581\uff5c>"]
    tok = bpe_tokenizer(specials, add_bos=True, bos_token="<|begin_of_sentence|>", eos_token="<|end_of_sentence|>",
                        pad_token="<|pad|>", extra_special_tokens={
                            "image_token": "<image_placeholder>", "boi_token": "<begin_of_image>",
                            "eoi_token": "<end_of_image>"})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    size, patch, grid = 16, 4, 4  # 16 understanding patches; 4x4 generated tokens
    processor = JanusProcessor(image_processor=JanusImageProcessor(size={"height": size, "width": size}),
                               tokenizer=tok, num_image_tokens=(size // patch) ** 2, use_default_system_prompt=False)
    config = JanusConfig(
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=ids["<|begin_of_sentence|>"],
                         eos_token_id=ids["<|end_of_sentence|>"], pad_token_id=ids["<|pad|>"]),
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, image_size=size,
                           patch_size=patch, projection_dim=32, depth=1, num_image_tokens=grid * grid,
                           mlp_ratio=2.0),
        vq_config=dict(embed_dim=8, num_embeddings=32, latent_channels=32, base_channels=32,
                       channel_multiplier=[1, 1], num_res_blocks=1, num_patches=grid, projection_dim=32,
                       image_token_embed_dim=32, num_hidden_layers=1),
        image_token_id=ids["<image_placeholder>"])
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config)
    model.generation_config.pad_token_id = ids["<\uff5c\u2581pad\u2581\uff5c>"]  # as convert_janus_weights_to_hf.py
    model.generation_config.generation_kwargs = {"boi_token_id": ids["<begin_of_image>"]}
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def chameleon_image_token(code: int) -> str:
    """Chameleon's name for VQ code `code`: IMGIMG + digits spelled A-J + Z."""
    return "IMGIMG" + "".join(chr(ord("A") + int(d)) for d in str(code)) + "Z"


def build_chameleon(folder: Path, seed: int = 0, with_decoder: bool = True) -> Path:
    """Tiny Chameleon with the VQGAN decoder weights stored under `model.vqmodel.decoder.*`
    in the checkpoint's safetensors (the layout of HF-format Anole checkpoints)."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import (ChameleonConfig, ChameleonForConditionalGeneration, ChameleonImageProcessor,
                              ChameleonProcessor)

    from wmbench.models.chameleon_vq import build_decoder

    codebook = 16
    # "<reserved08706>": Chameleon's END-OF-TURN, the real tokenizer's sep token (not set here)
    specials = ["<s>", "</s>", "<pad>", "<image>", "<racm3:break>", "<eoss>", "<reserved08706>"]
    specials += [chameleon_image_token(c) for c in range(codebook)]
    tok = bpe_tokenizer(specials, add_bos=True, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                        extra_special_tokens={"image_token": "<image>", "boi_token": "<racm3:break>",
                                              "eoi_token": "<eoss>"})
    size = 16
    vq = dict(embed_dim=4, num_embeddings=codebook, latent_channels=32, resolution=size, base_channels=32,
              channel_multiplier=[1, 2], num_res_blocks=1, attn_resolutions=[])
    n_tokens = (size // 2) ** 2
    image_processor = ChameleonImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = ChameleonProcessor(image_processor=image_processor, tokenizer=tok, image_seq_length=n_tokens)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<s>", "</s>", "<pad>")}
    config = ChameleonConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                             vq_config=vq, vocabulary_map=tok.get_vocab(), bos_token_id=ids["<s>"],
                             eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    torch.manual_seed(seed)
    model = ChameleonForConditionalGeneration(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if with_decoder:
        weights = Path(folder) / "model.safetensors"
        state = load_file(str(weights))
        decoder = build_decoder(model.model.vqmodel.config)
        state.update({f"model.vqmodel.decoder.{k}": v.contiguous() for k, v in decoder.state_dict().items()})
        save_file(state, str(weights), metadata={"format": "pt"})
    return folder


def build_emu3(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Emu3Config, Emu3ForConditionalGeneration, Emu3ImageProcessor, Emu3Processor

    codebook = 16
    visual = [f"<|visual token {c:06d}|>" for c in range(codebook)]
    specials = ["<|extra_203|>", "<|endoftext|>", "<|extra_204|>", "<image>", "<|image start|>", "<|image end|>",
                "<|image token|>", "<|extra_200|>", "<|extra_201|>", *visual]
    tok = bpe_tokenizer(specials, bos_token="<|extra_203|>", eos_token="<|extra_204|>", pad_token="<|endoftext|>",
                        extra_special_tokens={"image_token": "<image>", "boi_token": "<|image start|>",
                                              "eoi_token": "<|image end|>", "image_wrapper_token": "<|image token|>",
                                              "eof_token": "<|extra_201|>"})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    image_processor = Emu3ImageProcessor(min_pixels=32 * 32, max_pixels=32 * 32, spatial_factor=8)
    processor = Emu3Processor(image_processor=image_processor, tokenizer=tok, chat_template=simple_template("<image>"))
    config = Emu3Config(
        vq_config=dict(codebook_size=codebook, embed_dim=4, latent_channels=4, base_channels=32,
                       channel_multiplier=[1, 1, 1, 1], num_res_blocks=1, attn_resolutions=[],
                       temporal_downsample_factor=4, hidden_size=32, num_attention_heads=1),
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=ids["<|extra_203|>"], eos_token_id=ids["<|extra_204|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vocabulary_map=tok.get_vocab())
    torch.manual_seed(seed)
    Emu3ForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
