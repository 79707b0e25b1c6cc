"""RSNA Pediatric Bone Age Challenge 2017, first place (16 Bit): InceptionV3 with a sex input."""
